"""`stare-train <algorithm>`: one entry point for the learning algorithms (sft, tpo, sta-tpo, ppo, sta-ppo; one line
of ALGORITHMS each). Each algorithm module has `main(argv) -> exit code`."""

from __future__ import annotations

import importlib
import sys

ALGORITHMS = {
    "sft": ("sim_training.train.sft", "imitation (supervised fine-tuning) on demonstrations"),
    "tpo": ("sim_training.train.tpo", "trajectory preference optimisation (GRAPE's TPO) on policy rollouts"),
    "sta-tpo": ("sim_training.train.tpo_sta", "StA-TPO: stage-level preference pairs with the stage-cost penalty"),
    "ppo": ("sim_training.train.ppo", "online PPO in simulation (RL4VLA grasp/success potential reward)"),
    "sta-ppo": ("sim_training.train.ppo_sta", "StA-PPO: the same PPO with StARe's stage-shaped reward"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    usage = "usage: stare-train {" + ",".join(ALGORITHMS) + "} [options]  (stare-train ALGORITHM --help)"
    if not argv or argv[0] in ("-h", "--help"):
        print(usage + "\n\nalgorithms:\n" + "\n".join(f"  {k:10s}{v[1]}" for k, v in ALGORITHMS.items()))
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in ALGORITHMS:
        print(f"stare-train: error: unknown algorithm {name!r}; choose from {', '.join(ALGORITHMS)}", file=sys.stderr)
        return 2
    from sim_training.data import DatasetError
    from sim_training.envs.gpu_physics import GpuSimulationError
    from sim_training.train import TrainError
    from sim_training.train.state import TrainStateError
    from stare_policy.model import CheckpointError, MissingStatisticsError
    from stare_policy.typed_config import ConfigError

    module = importlib.import_module(ALGORITHMS[name][0])
    try:
        return module.main(rest)
    except (ConfigError, DatasetError, CheckpointError, TrainStateError, MissingStatisticsError, FileNotFoundError,
            TrainError, GpuSimulationError) as err:
        print(f"stare-train {name}: error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
