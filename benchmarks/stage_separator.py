"""StARe stage separators: accuracy on expert demos and noisy replays, and speed. Prints Markdown.

    .venv/bin/python benchmarks/stage_separator.py --data data/stages/demos --noise 0.03 0.05

--data holds one `stare-demos` dataset per task. For each task: agreement of the proprioceptive labels
with the privileged ones (fraction of steps), the median |step difference| of stage entries, the same on
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


def accuracy_rows(data: Path, noise: list[float]) -> list[str]:
    rows = []
    for root in sorted(p for p in data.iterdir() if (p / "dataset.json").is_file()):
        dataset = Dataset(root)
        stages, demos = stage_spec(dataset.spec.env_id), list(dataset)
        rate = dataset.spec.control_freq
        stats = task_statistics(stages, label_episodes(stages, [d.arrays for d in demos], rate))
        cells = [f"{stats['agreement']:.3f}", f"{stats['transition_error_steps_median']:g}"]
        for sigma in noise:
            noisy = noisy_replays(dataset.spec, demos, sigma, seed=1)
            nstats = task_statistics(stages, label_episodes(stages, [e.arrays for e in noisy], rate))
            failed = sum(not e.success for e in noisy)
            cells.append(f"{nstats['agreement']:.3f} ({nstats['transition_error_steps_median']:g}; "
                         f"{failed}/{len(noisy)} failed)")
        hidden = [s.name for s in stages.stages if not s.observable]
        name = dataset.spec.env_id + (f" ({', '.join(hidden)} not observable)" if hidden else "")
        rows.append(f"| {name} | {len(demos)} | " + " | ".join(cells) + " |")
        print(rows[-1], flush=True)
    return rows


def _per_call(fn, calls: int) -> float:
    start = time.perf_counter()
    for i in range(calls):
        fn(i)
    return (time.perf_counter() - start) / calls


def _best_of(fn, repeats: int = 3) -> float:
    """Fastest of a few runs (seconds): the machine is shared, the slower runs measure the neighbours."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def timing(data: Path, task: str, batch_steps: int) -> dict[str, float]:
    dataset = Dataset(data / task)
    stages = stage_spec(task)
    demos = list(dataset)
    qpos = np.concatenate([d.arrays["qpos"] for d in demos]).astype(np.float64)
    grip = np.concatenate([d.arrays["action"][:, -1] for d in demos]).astype(np.float64)
    fk = ChainFK()
    rows = qpos.tolist()
    out = {"fk_float_us": 1e6 * min(_per_call(lambda i: fk.pose(rows[i % len(rows)][:7]), 20000) for _ in range(3))}

    import pytorch_kinematics as pk
    import torch

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):  # URDF chatter
        chain = pk.build_serial_chain_from_urdf(fk.urdf_path.read_bytes(), "panda_hand_tcp").to(dtype=torch.float64)
    arm = torch.as_tensor(qpos[:, :7])
    out["fk_pytorch_kinematics_us"] = 1e6 * _per_call(lambda i: chain.forward_kinematics(arm[i % len(arm)][None]), 300)

    segmenter = ProprioSegmenter(stages, fk)
    samples = list(zip(rows, grip.tolist()))

    def online(i: int) -> None:
        if i % len(samples) == 0:
            segmenter.reset()
        segmenter.step(*samples[i % len(samples)])

    out["online_us"] = 1e6 * min(_per_call(online, 20000) for _ in range(3))

    big = np.random.default_rng(0).uniform(-2.8, 2.8, (batch_steps, 7))
    out["fk_batch_steps_per_s"] = batch_steps / _best_of(lambda: fk.batch(big, rotation=False))
    out["fk_pytorch_kinematics_batch_steps_per_s"] = 100_000 / _best_of(
        lambda: chain.forward_kinematics(torch.as_tensor(big[:100_000])), 1)

    copies = max(1, batch_steps // len(qpos))
    episodes_q = [d.arrays["qpos"] for d in demos] * copies
    episodes_g = [d.arrays["action"][:, -1] for d in demos] * copies
    steps = sum(len(q) for q in episodes_q)
    out["batch_steps_per_s"] = steps / _best_of(lambda: segment_proprio_batch(stages, episodes_q, episodes_g, fk=fk))
    out["batch_steps"], out["batch_episodes"] = steps, len(episodes_q)
    out["env_step_us"] = env_step_us(dataset, demos[0])
    return out


def env_step_us(dataset: Dataset, demo) -> float:
    """One step of the task's env without cameras (state observations, end-effector control)."""
    from sim_training.envs import make_env

    env = make_env(dataset.spec, obs_mode="state_dict")
    try:
        env.reset(seed=demo.seed)
        actions = demo.arrays["action"]
        start = time.perf_counter()
        for action in actions:
            env.step(action[None])
        return 1e6 * (time.perf_counter() - start) / len(actions)
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
    t = timing(args.data, args.timing_task, args.batch_steps)
    print(f"\nTiming on {args.timing_task} demos (fastest of 3 runs; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} cores at the end):\n")
    print("| measure | value |\n| --- | --- |")
    print(f"| forward kinematics, generated chain, one configuration (floats) | {t['fk_float_us']:.1f} us |")
    print(f"| forward kinematics, pytorch_kinematics, one configuration | {t['fk_pytorch_kinematics_us']:.0f} us |")
    print(f"| online separator per sample, FK included | {t['online_us']:.1f} us |")
    print(f"| one env step (CPU sim, state obs, pd_ee_delta_pose) | {t['env_step_us']:.0f} us |")
    print(f"| online separator / env step | {t['online_us'] / t['env_step_us']:.1%} |")
    print(f"| batch labelling ({t['batch_episodes']} episodes, {t['batch_steps']} steps) | "
          f"{t['batch_steps_per_s'] / 1e6:.2f} M steps/s |")
    print(f"| batch FK alone, generated chain (numpy) | {t['fk_batch_steps_per_s'] / 1e6:.2f} M configs/s |")
    print(f"| batch FK alone, pytorch_kinematics | {t['fk_pytorch_kinematics_batch_steps_per_s'] / 1e6:.2f} M configs/s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
