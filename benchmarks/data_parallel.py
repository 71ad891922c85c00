"""Scale-out figures on this machine: SFT samples/s with 1 and 2 data-parallel processes, and policy
rollout env-steps/s with 1, 2 and 4 simulator workers. Prints Markdown tables.

    .venv/bin/python benchmarks/data_parallel.py --data data/demos/PickCube-v1-scripted2 \
        --checkpoint checkpoints/pick-cube-sft --out runs/bench-dp

SFT: the small model (default config) for --sft-steps steps at the global batch --batch, once alone and
once under `torchrun --nproc_per_node 2` (OMP_NUM_THREADS=1 per rank, and the lone run with 2 threads,
so both use the two cores); the rate is steps x batch / the trainer's own training time (elapsed_s:
start-up, data loading and checkpoint writes left out). Rollouts: PPO's sampling loop (`collect`) with
the checkpoint on CPU for --rollout-steps steps per env, after one untimed step.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def sft_rate(data: Path, out: Path, ranks: int, steps: int, batch: int) -> float:
    common = ["sft", "--data", str(data), "--out", str(out), "--overwrite", "--quiet", f"steps={steps}",
              f"batch_size={batch}", f"val_every={10 * steps}", f"save_every={10 * steps}", "val_max_frames=32"]
    if ranks == 1:
        cmd = [sys.executable, "-m", "sim_training.train.cli", *common, "num_threads=2"]
        env = dict(os.environ)
    else:
        cmd = [str(Path(sys.executable).with_name("torchrun")), "--standalone", "--nproc_per_node", str(ranks), "-m",
               "sim_training.train.cli", *common, "num_threads=1"]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
    print("$", " ".join(cmd[1:] if ranks == 1 else cmd), flush=True)
    subprocess.run(cmd, cwd=REPO, env=env, check=True)
    state = json.loads((out / "trainer_state.json").read_text())
    return steps * batch / state["elapsed_s"]


def rollout_rate(checkpoint: Path, task: str, workers: int, steps: int) -> tuple[float, float]:
    """(env steps/s of policy rollouts, the share of wall time in the policy)."""
    import torch

    from sim_training.tasks import get_task
    from sim_training.train.ppo import collect
    from sim_training.train.ppo_envs import EnvStepper, make_rl_envs
    from stare_policy.model.vla import action_temperature
    from stare_policy.policy import VLAPolicy

    spec = get_task(task)
    policy = VLAPolicy.load(checkpoint, "cpu")
    envs = make_rl_envs(spec, workers, stage_aware=True, gamma=0.99)
    try:
        stepper = EnvStepper(envs, spec, first_seed=200_000)
        obs = stepper.reset()
        temperature = action_temperature(1.0, None)
        _, obs = collect(policy, stepper, obs, 1, spec.instruction, temperature, torch.Generator().manual_seed(0))
        t0 = time.perf_counter()
        rollout, _ = collect(policy, stepper, obs, steps, spec.instruction, temperature, torch.Generator().manual_seed(1))
        seconds = time.perf_counter() - t0
    finally:
        envs.close()
    return steps * workers / seconds, rollout.policy_s / seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--checkpoint", type=Path, default=Path("checkpoints/pick-cube-sft"))
    parser.add_argument("--task", default="PickCube-v1")
    parser.add_argument("--out", type=Path, default=Path("runs/bench-dp"))
    parser.add_argument("--sft-steps", type=int, default=30)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--rollout-steps", type=int, default=40)
    parser.add_argument("--skip-sft", action="store_true")
    args = parser.parse_args()
    print(f"# {platform.node()}, {os.cpu_count()} CPUs, {time.strftime('%Y-%m-%d %H:%M')}")

    if not args.skip_sft:
        rates = {n: sft_rate(args.data, args.out / f"sft-{n}", n, args.sft_steps, args.batch) for n in (1, 2)}
        print("\n| SFT processes | samples/s | vs 1 process |\n| --- | --- | --- |")
        for n, rate in rates.items():
            print(f"| {n} | {rate:.1f} | {rate / rates[1]:.2f} |")

    rows = []
    for workers in args.workers:
        rate, policy_share = rollout_rate(args.checkpoint, args.task, workers, args.rollout_steps)
        rows.append((workers, rate, policy_share))
    print("\n| rollout workers | env steps/s | vs 1 worker | policy share of wall time |\n| --- | --- | --- | --- |")
    for workers, rate, share in rows:
        print(f"| {workers} | {rate:.1f} | {rate / rows[0][1]:.2f} | {share:.0%} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
