"""`stare-train sta-tpo`: TPO with stage-level pairs and the stage-cost penalty (see `tpo`)."""

from __future__ import annotations

import sys

from sim_training.train.tpo import main as _tpo_main


def main(argv: list[str] | None = None) -> int:
    return _tpo_main(argv, stage_aware=True)


if __name__ == "__main__":
    sys.exit(main())
