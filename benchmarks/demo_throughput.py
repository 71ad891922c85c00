"""Expert-demo throughput and planner success per task: runs `stare-demos` and prints a Markdown table.

    .venv/bin/python benchmarks/demo_throughput.py --episodes 20 --workers 2 --out data/bench-demos

Each task's dataset is kept under --out; the per-task JSON summaries sit beside them.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DEFAULT_TASKS = ["PickCube-v1", "StackCube-v1", "PushCube-v1", "PullCube-v1", "LiftPegUpright-v1"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=DEFAULT_TASKS)
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("data/bench-demos"))
    args = parser.parse_args()

    rows = []
    for task in args.tasks:
        out, summary = args.out / task, args.out / f"{task}.json"
        cmd = [sys.executable, "-m", "sim_training.demos.cli", "--task", task, "--episodes", str(args.episodes),
               "--out", str(out), "--workers", str(args.workers), "--json", str(summary), "--overwrite", "--quiet"]
        print("$", " ".join(cmd[2:]), flush=True)
        if subprocess.run(cmd).returncode != 0:
            rows.append(f"| {task} | failed | | | | |")
            continue
        report = json.loads(summary.read_text())
        from sim_training.data import Dataset

        lengths = [entry["length"] for entry in Dataset(out).entries]
        rows.append(
            f"| {task} | {report['written']}/{report['attempts']} | {report['planner_success_rate']:.0%} "
            f"| {report['conversion_success_rate']:.0%} | {report['demos_per_second']:.3f} "
            f"| {np.mean(lengths):.0f} / {max(lengths)} |"
        )
    print(f"\n{time.strftime('%Y-%m-%d')}, {platform.machine()}, {args.workers} workers, "
          f"{args.episodes} demos per task\n")
    print("| task | written / seeds tried | planner success | kept after conversion | demos/s | mean / max steps |")
    print("| --- | --- | --- | --- | --- | --- |")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
