"""Grid search of stage thresholds on demos (and noisy replays of them): how the defaults were tuned.

    .venv/bin/python benchmarks/stage_thresholds.py --data data/stages/demos --task StackCube-v1 \
        --grid slow_ratio=0.35,0.45,0.55 speed_window=1,2,3 --noise 0.05

For every combination, prints the proprioceptive-vs-privileged agreement and median transition error on
the demos and on each noisy set. Privileged thresholds change the ground truth itself, so tune them
for meaning (where the expert's motion says a stage ends) and the proprioceptive ones for agreement.
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import sys
from pathlib import Path

import sim_training  # noqa: F401  (selects the project's Vulkan driver)
from sim_training.data import Dataset
from sim_training.stages.evaluate import label_episodes, task_statistics
from sim_training.stages.rollouts import noisy_replays
from stare_policy.stages import StageThresholds, stage_spec

FIELDS = {f.name: f.type for f in dataclasses.fields(StageThresholds)}


def parse_grid(items: list[str]) -> dict[str, list]:
    grid = {}
    for item in items:
        name, _, values = item.partition("=")
        if name not in FIELDS:
            raise SystemExit(f"stage_thresholds: unknown threshold {name!r}; known: {', '.join(FIELDS)}")
        kind = str(FIELDS[name])
        cast = {"int": int, "bool": lambda v: v.lower() in ("1", "true", "yes")}.get(kind, float)
        grid[name] = [cast(v) for v in values.split(",")]
    return grid


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/stages/demos"))
    parser.add_argument("--task", required=True)
    parser.add_argument("--grid", nargs="+", required=True, help="name=v1,v2,... per threshold")
    parser.add_argument("--noise", type=float, nargs="*", default=[])
    args = parser.parse_args()

    dataset = Dataset(args.data / args.task)
    base = stage_spec(args.task)
    sets = {"demos": [d.arrays for d in dataset]}
    for sigma in args.noise:
        sets[f"noise {sigma}"] = [e.arrays for e in noisy_replays(dataset.spec, list(dataset), sigma, seed=1)]
    grid = parse_grid(args.grid)
    print("| " + " | ".join(grid) + " | " + " | ".join(f"{name}: agreement (median error)" for name in sets) + " |")
    print("| --- " * (len(grid) + len(sets)) + "|")
    for combo in itertools.product(*grid.values()):
        spec = base.with_thresholds(**dict(zip(grid, combo)))
        cells = []
        for episodes in sets.values():
            stats = task_statistics(spec, label_episodes(spec, episodes, dataset.spec.control_freq))
            cells.append(f"{stats['agreement']:.3f} ({stats['transition_error_steps_median']:g})")
        print("| " + " | ".join(map(str, combo)) + " | " + " | ".join(cells) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
