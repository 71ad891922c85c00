"""Raw rendered step rate of CPU simulator workers for several lavapipe thread counts (LP_NUM_THREADS).

    .venv/bin/python benchmarks/render_threads.py --task PickCube-v1 --workers 2 --settings 0 1 2 4

Each setting runs in a fresh process (Mesa reads the variable when the Vulkan device is created), steps the
evaluation env's workers with zero actions and a reset every `--episode-length` steps, and reports steps/s
and the CPU the workers used (cores). The settings alternate over `--rounds` rounds so drift in the
machine's load falls on all of them. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def measure(task: str, workers: int, steps: int, episode_length: int) -> dict:
    import psutil

    from benchmarks.policy_inference import _raw_rate
    from sim_training.evaluation.stages import make_eval_env
    from sim_training.tasks import get_task

    env, _ = make_eval_env(get_task(task), workers)
    try:
        env.reset(seed=list(range(workers)))
        me = psutil.Process()

        def worker_cpu() -> float:
            return sum(sum(c.cpu_times()[:2]) for c in me.children(recursive=True))

        cpu0, t0 = worker_cpu(), time.perf_counter()
        n, seconds = _raw_rate(env, workers, steps, episode_length)
        cores = (worker_cpu() - cpu0) / (time.perf_counter() - t0)
    finally:
        env.close()
    return {"steps_per_s": n / seconds, "worker_cores": cores}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="PickCube-v1")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--steps", type=int, default=300, help="vector steps per measurement")
    parser.add_argument("--episode-length", type=int, default=28)
    parser.add_argument("--settings", nargs="+", default=["0", "1", "2", "4"], help="LP_NUM_THREADS values")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)  # internal: one setting
    args = parser.parse_args()
    if args.measure:
        print("RESULT " + json.dumps(measure(args.task, args.workers, args.steps, args.episode_length)))
        return 0

    results: dict[str, list[dict]] = {s: [] for s in args.settings}
    for _ in range(args.rounds):
        for setting in args.settings:
            run = subprocess.run([sys.executable, __file__, *sys.argv[1:], "--measure"], capture_output=True,
                                 text=True, env={**os.environ, "LP_NUM_THREADS": setting})
            line = [ln for ln in run.stdout.splitlines() if ln.startswith("RESULT ")]
            if run.returncode or not line:
                print(f"LP_NUM_THREADS={setting} failed:\n{run.stderr[-2000:]}", file=sys.stderr)
                return 1
            results[setting].append(json.loads(line[0][7:]))
    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n{time.strftime('%Y-%m-%d %H:%M')}, {args.task}, {args.workers} workers, zero actions, a reset every "
          f"{args.episode_length} steps, {os.cpu_count()} CPUs, load average {load}\n")
    print("| LP_NUM_THREADS | steps/s, each round | worker CPU (cores) |\n| --- | --- | --- |")
    for setting, runs in results.items():
        rates = ", ".join(f"{r['steps_per_s']:.1f}" for r in runs)
        cores = ", ".join(f"{r['worker_cores']:.2f}" for r in runs)
        print(f"| {setting} | {rates} | {cores} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
