"""StARe stage separators: accuracy on expert demos and noisy replays, and speed. Prints Markdown.

    .venv/bin/python benchmarks/stage_separator.py --data data/stages/demos --noise 0.03 0.05

--data holds one `stare-demos` dataset per task. For each task: agreement of the proprioceptive labels
with the privileged ones (fraction of steps; in brackets with each stage whose start proprioception cannot
see folded into the stage before it), the median |step difference| of stage entries, the same on
the demos replayed open-loop with Gaussian action noise (some of which fail). Then timing: forward
kinematics (generated numpy/float chain vs pytorch_kinematics), the online separator per sample, batch
labelling throughput, and one env step of the simulator measured in the same run for the ratio.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

import sim_training  # noqa: F401  (selects the project's Vulkan driver)
from sim_training.data import Dataset
from sim_training.stages.evaluate import label_episodes, task_statistics
from sim_training.stages.rollouts import noisy_replays
from stare_policy.stages import ChainFK, ProprioSegmenter, segment_proprio_batch, stage_spec


def _agreement(stats: dict) -> str:
    """All stages, and (in brackets, where some start unobservably) observable stages only."""
    if stats["agreement_observable"] == stats["agreement"] and all(stats["observable"].values()):
        return f"{stats['agreement']:.3f}"
    return f"{stats['agreement']:.3f} [{stats['agreement_observable']:.3f}]"


def accuracy_rows(data: Path, noise: list[float]) -> list[str]:
    rows = []
    for root in sorted(p for p in data.iterdir() if (p / "dataset.json").is_file()):
        dataset = Dataset(root)
        stages, demos = stage_spec(dataset.spec.env_id), list(dataset)
        rate = dataset.spec.control_freq
        stats = task_statistics(stages, label_episodes(stages, [d.arrays for d in demos], rate))
        cells = [_agreement(stats), f"{stats['transition_error_steps_median']:g}"]
        for sigma in noise:
            noisy = noisy_replays(dataset.spec, demos, sigma, seed=1)
            nstats = task_statistics(stages, label_episodes(stages, [e.arrays for e in noisy], rate))
            failed = sum(not e.success for e in noisy)
            cells.append(f"{_agreement(nstats)} ({nstats['transition_error_steps_median']:g}; "
                         f"{failed}/{len(noisy)} failed)")
        hidden = [s.name for s in stages.stages if not s.observable]
        name = dataset.spec.env_id + (f" ({', '.join(hidden)} not observable)" if hidden else "")
        rows.append(f"| {name} | {len(demos)} | " + " | ".join(cells) + " |")
        print(rows[-1], flush=True)
    return rows


def _clock(fn, calls: int = 1, repeats: int = 3) -> tuple[float, float]:
    """Seconds per call as (wall, CPU), each the least of `repeats` runs. On a shared machine wall time
    also measures the neighbours; CPU time is this process's own work."""
    wall = cpu = float("inf")
    for _ in range(repeats):
        w, c = time.perf_counter(), time.process_time()
        for i in range(calls):
            fn(i)
        wall, cpu = min(wall, (time.perf_counter() - w) / calls), min(cpu, (time.process_time() - c) / calls)
    return wall, cpu


def timing(data: Path, task: str, batch_steps: int) -> list[tuple[str, tuple[float, float], str]]:
    """(measure, (wall, CPU) value, unit) rows."""
    import pytorch_kinematics as pk
    import torch

    torch.set_num_threads(1)  # like numpy here: one core
    dataset = Dataset(data / task)
    stages, demos = stage_spec(task), list(dataset)
    qpos = np.concatenate([d.arrays["qpos"] for d in demos]).astype(np.float64)
    grip = np.concatenate([d.arrays["action"][:, -1] for d in demos]).astype(np.float64)
    fk, rows = ChainFK(), qpos.tolist()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):  # URDF chatter
        chain = pk.build_serial_chain_from_urdf(fk.urdf_path.read_bytes(), "panda_hand_tcp").to(dtype=torch.float64)
    arm = torch.as_tensor(qpos[:, :7])
    segmenter = ProprioSegmenter(stages, fk)

    def online(i: int) -> None:
        if i % len(rows) == 0:
            segmenter.reset()
        segmenter.step(rows[i % len(rows)], grip[i % len(rows)])

    big = np.random.default_rng(0).uniform(-2.8, 2.8, (batch_steps, 7))
    copies = max(1, batch_steps // len(qpos))
    episodes_q = [d.arrays["qpos"] for d in demos] * copies
    episodes_g = [d.arrays["action"][:, -1] for d in demos] * copies
    steps = sum(len(q) for q in episodes_q)
    fk_one = _clock(lambda i: fk.pose(rows[i % len(rows)][:7]), 20000)
    pk_one = _clock(lambda i: chain.forward_kinematics(arm[i % len(arm)][None]), 300)
    on, env = _clock(online, 20000), env_step(dataset, demos[0])
    batch = _clock(lambda i: segment_proprio_batch(stages, episodes_q, episodes_g, fk=fk))
    fk_many = _clock(lambda i: fk.batch(big, rotation=False))
    pk_many = _clock(lambda i: chain.forward_kinematics(torch.as_tensor(big[:100_000])), repeats=1)
    us = lambda t: (1e6 * t[0], 1e6 * t[1])  # noqa: E731
    per_s = lambda n, t: (n / t[0] / 1e6, n / t[1] / 1e6)  # noqa: E731
    return [
        ("forward kinematics, generated chain, one configuration (floats)", us(fk_one), "us"),
        ("forward kinematics, pytorch_kinematics, one configuration", us(pk_one), "us"),
        ("online separator per sample, FK included", us(on), "us"),
        ("one env step (CPU sim, state obs, pd_ee_delta_pose)", us(env), "us"),
        ("online separator / env step", (100 * on[0] / env[0], 100 * on[1] / env[1]), "%"),
        (f"batch labelling ({len(episodes_q)} episodes, {steps} steps)", per_s(steps, batch), "M steps/s"),
        ("batch FK alone, generated chain (numpy)", per_s(batch_steps, fk_many), "M configs/s"),
        ("batch FK alone, pytorch_kinematics", per_s(100_000, pk_many), "M configs/s"),
    ]


def env_step(dataset: Dataset, demo) -> tuple[float, float]:
    """One step of the task's env without cameras (state observations, end-effector control)."""
    from sim_training.envs import make_env

    env = make_env(dataset.spec, obs_mode="state_dict")
    try:
        env.reset(seed=demo.seed)
        actions = demo.arrays["action"]
        return _clock(lambda i: env.step(actions[i % len(actions)][None]), len(actions), repeats=1)
    finally:
        env.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("data/stages/demos"))
    parser.add_argument("--noise", type=float, nargs="*", default=[0.03, 0.05],
                        help="std of the Gaussian noise on the 6 normalised arm action dims")
    parser.add_argument("--batch-steps", type=int, default=1_000_000)
    parser.add_argument("--timing-task", default="StackCube-v1", help="whose demos the timings replay")
    parser.add_argument("--skip-accuracy", action="store_true")
    args = parser.parse_args()

    print(f"{time.strftime('%Y-%m-%d')}, {platform.machine()}, {platform.python_version()}\n")
    if not args.skip_accuracy:
        noisy_heads = " | ".join(f"noisy sigma={s}: agreement (median error; failed)" for s in args.noise)
        print(f"| task | demos | agreement | median transition error (steps) | {noisy_heads} |")
        print("| --- | --- | --- | --- |" + " --- |" * len(args.noise))
        accuracy_rows(args.data, args.noise)
    rows = timing(args.data, args.timing_task, args.batch_steps)
    print(f"\nTiming on {args.timing_task} demos (least of 3 runs; load average {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} cores at the end):\n")
    print("| measure | wall clock | CPU time of this process |\n| --- | --- | --- |")
    for name, (wall, cpu), unit in rows:
        digits = 0 if wall >= 100 else 2 if wall < 10 else 1
        print(f"| {name} | {wall:.{digits}f} {unit} | {cpu:.{digits}f} {unit} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
