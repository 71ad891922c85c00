"""VLA policy figures: inference latency, training throughput, peak memory, evaluation overhead.

    .venv/bin/python benchmarks/policy_inference.py --checkpoint runs/sft-pick --data data/demos/PickCube-v1

Prints a Markdown table. Each part runs in its own subprocess so that its peak RSS is its own:
  infer     one action (7 tokens, KV cache, greedy) at batch 1 and 8 on real dataset frames: p50/p99 latency,
            eager and compiled (`VLAPolicy.compile`)
  train     SFT steps on the dataset with the checkpoint's model config: samples/s (after warm-up)
  sim       one rendered single-env simulator step (the policy camera), for comparison with inference
  eval      closed-loop episodes with the policy (--compile: the compiled one) vs the raw rendered step rate of
            the same vector env and workers (zero actions), without resets and with a reset at the episodes'
            mean length, in one run; the episodes run twice, with all workers in lockstep and in two groups
            that take turns; then the lockstep run's actions are replayed without the policy, through the
            evaluation env and through plain simulator workers (the same episodes: the like-for-like
            baseline, since a still arm is cheaper to simulate than one that grasps and lifts)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np


def _frames(data: str, n: int):
    from sim_training.data import Dataset

    ds = Dataset(data)
    ep = ds.episode(0)
    idx = np.arange(n) % len(ep)
    keys = ("qpos", "tcp_pose", *ds.spec.goal_inputs)
    return ep.arrays["image"][idx], {k: ep.arrays[k][idx] for k in keys}, ds.spec


def part_infer(args) -> dict:
    import torch

    from stare_policy.policy import VLAPolicy

    torch.set_num_threads(args.threads)
    policy = VLAPolicy.load(args.checkpoint, args.device)
    out = {}
    for mode in ("eager", "compiled"):
        if mode == "compiled":
            policy.compile()
        for batch in (1, 8):
            images, proprio, spec = _frames(args.data, batch)
            t0 = time.perf_counter()
            policy.act(images, spec.instruction, proprio)
            first = time.perf_counter() - t0
            times = []
            for i in range(args.repeats + 10):
                t0 = time.perf_counter()
                policy.act(images, spec.instruction, proprio)
                if i >= 10:
                    times.append(time.perf_counter() - t0)
            ms = 1e3 * np.array(times)
            out[f"{mode}_b{batch}"] = {"p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
                                       "actions_per_s": float(batch * 1e3 / np.mean(ms)), "first_s": first}
    return out


def part_train(args) -> dict:
    import torch
    import torch.nn.functional as F

    from sim_training.train import sft
    from sim_training.train.frames import load_frames
    from stare_policy.model import checkpoint

    torch.set_num_threads(args.threads)
    ckpt = checkpoint.load(args.checkpoint, args.device)
    model, processor = ckpt.model.train(), ckpt.processor
    cfg = sft.SFTConfig(model=model.config, batch_size=args.batch_size)
    frames = load_frames([args.data], cfg.model.proprio_keys, cfg.model.proprio_dims)
    bins = processor.bins(frames.actions)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    rng = np.random.default_rng(0)
    rows = np.arange(len(frames))
    t0 = None
    for step in range(args.train_steps + 3):
        if step == 3:
            t0 = time.perf_counter()
        inputs, target = sft.batch(frames, rng.choice(rows, cfg.batch_size), processor, bins, cfg, rng, True)
        inputs, target = inputs.to(args.device), target.to(args.device)
        logits, _ = model(inputs, target)
        loss = F.cross_entropy(logits.flatten(0, 1), target.flatten())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    if args.device.startswith("cuda"):
        torch.cuda.synchronize()  # the steps above were only queued on the GPU
    seconds = time.perf_counter() - t0
    return {"samples_per_s": args.train_steps * cfg.batch_size / seconds, "batch_size": cfg.batch_size,
            "frames_in_memory": len(frames)}


def part_sim(args) -> dict:
    import torch

    from sim_training.envs import make_env
    from sim_training.tasks import get_task

    torch.set_num_threads(1)
    env = make_env(get_task(args.task))
    env.reset(seed=0)
    zero = np.zeros((1, 7), np.float32)
    for _ in range(5):
        env.step(zero)
    times = []
    for _ in range(args.sim_steps):
        t0 = time.perf_counter()
        env.step(zero)
        times.append(time.perf_counter() - t0)
    env.close()
    return {"step_ms_p50": float(1e3 * np.median(times))}


def part_eval(args) -> dict:
    import torch

    from sim_training.envs import make_vector_env
    from sim_training.evaluation.rollout import batched_inputs, run_async, split_workers
    from sim_training.evaluation.stages import make_eval_env
    from sim_training.tasks import get_task
    from stare_policy.policy import VLAPolicy

    torch.set_num_threads(args.threads)
    spec = get_task(args.task)
    policy = VLAPolicy.load(args.checkpoint, args.device)
    if args.compile:
        policy.compile()
    act = lambda im, pr: policy.act(im, spec.instruction, pr)  # noqa: E731
    seeds = list(range(1_000_000, 1_000_000 + args.episodes))
    # the same workers in groups that take turns (stare-eval's default): a separate set of processes
    groups = [make_eval_env(spec, n)[0] for n in split_workers(args.workers, 2)]
    try:
        for g in groups:  # a compiled policy compiles each group's batch size here, outside the timing
            obs, _ = g.reset(seed=list(range(g.num_envs)))
            act(*batched_inputs(obs, spec))
        grouped_records, grouped = run_async(groups, spec, act, seeds)
    finally:
        for g in groups:
            g.close()
    env, _ = make_eval_env(spec, args.workers)
    try:
        obs, _ = env.reset(seed=list(range(args.workers)))
        images, proprio = batched_inputs(obs, spec)
        policy.act(images, spec.instruction, proprio)  # a compiled policy compiles here, outside the timing
        played = []  # every batch of actions the policy chose, in order
        records, stats = run_async(env, spec, lambda im, pr: played.append(act(im, pr)) or played[-1], seeds)
        # the very same episodes without the policy: the same loop replays those actions (same seeds and
        # actions, so the same states, contacts and resets), once through the evaluation env (the online
        # stage separator in its workers) and once through plain simulator workers (the raw simulator)
        replayed = {}
        plain = make_vector_env(spec, args.workers)
        try:
            for name, target in (("replay", env), ("plain", plain)):
                replay = iter(played)
                replayed_records, replayed[name] = run_async(target, spec, lambda im, pr: next(replay), seeds)
                if [(r.length, r.success) for r in replayed_records] != [(r.length, r.success) for r in records]:
                    raise RuntimeError(f"the {name} replay's episodes differ from the played ones: baseline void")
        finally:
            plain.close()
        length = max(1, round(float(np.mean([r.length for r in records]))))
        raw_steps, raw_seconds = _raw_rate(env, args.workers, args.sim_steps, None)
        reset_steps, reset_seconds = _raw_rate(env, args.workers, args.sim_steps, length)
        # can policy time hide behind stepping? the raw rate again, with the policy acting in a thread beside it
        stop, calls = threading.Event(), [0]

        def keep_acting():
            while not stop.is_set():
                policy.act(images[:1], spec.instruction, {k: v[:1] for k, v in proprio.items()})
                calls[0] += 1

        beside = threading.Thread(target=keep_acting)
        beside.start()
        try:
            busy_steps, busy_seconds = _raw_rate(env, args.workers, args.sim_steps, None)
        finally:
            stop.set()
            beside.join()
    finally:
        env.close()
    rate = stats.env_steps / stats.seconds
    grouped_rate = grouped.env_steps / grouped.seconds
    raw, raw_resets = raw_steps / raw_seconds, reset_steps / reset_seconds
    return {"raw_steps_per_s": raw, "raw_with_resets_steps_per_s": raw_resets, "eval_steps_per_s": rate,
            "ratio": rate / raw_resets, "ratio_no_resets": rate / raw, "mean_length": length,
            "replay_steps_per_s": replayed["replay"].env_steps / replayed["replay"].seconds,
            "plain_replay_steps_per_s": replayed["plain"].env_steps / replayed["plain"].seconds,
            "lp_num_threads": os.environ.get("LP_NUM_THREADS"),
            "grouped_steps_per_s": grouped_rate, "grouped_ratio": grouped_rate / raw_resets,
            "grouped_policy_share": grouped.policy_seconds / grouped.seconds,
            "grouped_successes": sum(r.success for r in grouped_records), "successes": sum(r.success for r in records),
            "raw_beside_policy_steps_per_s": busy_steps / busy_seconds, "policy_calls_beside_per_s": calls[0] / busy_seconds,
            "workers": args.workers, "episodes": len(records), "policy_share": stats.policy_seconds / stats.seconds}


def _raw_rate(env, workers: int, steps: int, episode_length: int | None) -> tuple[int, float]:
    """Env steps and seconds of zero-action stepping; with `episode_length`, each worker is reset every that
    many steps (staggered, as workers of an evaluation finish at different times)."""
    zero = np.zeros((workers, 7), np.float32)
    env.reset(seed=list(range(workers)))
    for _ in range(5):
        env.step(zero)
    age = np.array([w * (episode_length or 1) // workers for w in range(workers)])
    t0 = time.perf_counter()
    for _ in range(steps):
        env.step(zero)
        age += 1
        if episode_length:
            done = age >= episode_length
            if done.any():
                env.reset(seed=list(range(workers)), options={"reset_mask": done})
                age[done] = 0
    return steps * workers, time.perf_counter() - t0


def _device_name(device: str) -> str:
    if not device.startswith("cuda"):
        return "policy on CPU"
    import torch

    return f"policy on {torch.cuda.get_device_name(torch.device(device))}"


PARTS = {"infer": part_infer, "train": part_train, "sim": part_sim, "eval": part_eval}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True)
    parser.add_argument("--data", default=None,
                        help="a dataset of the task (real frames for inputs and training); the infer and train parts")
    parser.add_argument("--task", default="PickCube-v1")
    parser.add_argument("--parts", nargs="+", default=list(PARTS), choices=list(PARTS))
    parser.add_argument("--threads", type=int, default=2, help="torch threads for the policy and training")
    parser.add_argument("--device", default="cpu", help="policy and training device: cpu or cuda")
    parser.add_argument("--repeats", type=int, default=300, help="timed inference calls per batch size")
    parser.add_argument("--batch-size", type=int, default=32, help="training batch size")
    parser.add_argument("--train-steps", type=int, default=20)
    parser.add_argument("--sim-steps", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--episodes", type=int, default=6)
    parser.add_argument("--compile", action="store_true", help="eval part: the compiled greedy policy")
    parser.add_argument("--part", default=None, help=argparse.SUPPRESS)  # internal: run one part, print JSON
    args = parser.parse_args()
    if args.data is None and {"infer", "train"} & set(args.parts):
        parser.error("--data is needed by the infer and train parts")

    if args.part:
        result = PARTS[args.part](args)
        result["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print("RESULT " + json.dumps(result))
        return 0

    results, failed = {}, []
    for part in args.parts:
        cmd = [sys.executable, __file__, *sys.argv[1:], "--part", part]
        run = subprocess.run(cmd, capture_output=True, text=True)
        line = [ln for ln in run.stdout.splitlines() if ln.startswith("RESULT ")]
        if run.returncode or not line:
            print(f"part {part} failed:\n{run.stderr[-3000:]}", file=sys.stderr)
            failed.append(part)  # the other parts' figures are still worth printing
            continue
        results[part] = json.loads(line[0][7:])

    load = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"\n{time.strftime('%Y-%m-%d %H:%M')}, {platform.machine()}, {_device_name(args.device)}, "
          f"{args.threads} torch threads, "
          f"LP_NUM_THREADS {results.get('eval', {}).get('lp_num_threads', os.environ.get('LP_NUM_THREADS'))}, "
          f"checkpoint {Path(args.checkpoint).name}, load average (1/5/15 min) {load}\n")
    print("| figure | value |\n| --- | --- |")
    if "infer" in results:
        r = results["infer"]
        for mode in ("eager", "compiled"):
            for batch in (1, 8):
                x = r[f"{mode}_b{batch}"]
                print(f"| inference {mode}, batch {batch}: one action (7 tokens), p50 / p99 | {x['p50_ms']:.1f} / "
                      f"{x['p99_ms']:.1f} ms ({x['actions_per_s']:.0f} actions/s; first call {x['first_s']:.1f} s) |")
        print(f"| inference peak RSS | {r['peak_rss_mb']:.0f} MB |")
    if "sim" in results:
        step = results["sim"]["step_ms_p50"]
        print(f"| one rendered simulator step ({args.task}, single env), p50 | {step:.1f} ms |")
    if "train" in results:
        r = results["train"]
        print(f"| SFT training throughput (batch {r['batch_size']}, augmentation on) | "
              f"{r['samples_per_s']:.0f} samples/s |")
        print(f"| SFT training peak RSS ({r['frames_in_memory']} frames in memory) | {r['peak_rss_mb']:.0f} MB |")
    if "eval" in results:
        r = results["eval"]
        print(f"| raw rendered step rate, {r['workers']} workers (zero actions, no resets) | "
              f"{r['raw_steps_per_s']:.1f} steps/s |")
        print(f"| raw rendered step rate, same, a reset every {r['mean_length']} steps (the evaluation's mean "
              f"episode length) | {r['raw_with_resets_steps_per_s']:.1f} steps/s |")
        print(f"| closed-loop evaluation step rate, same env, all workers in lockstep ({r['episodes']} episodes, "
              f"{'compiled' if args.compile else 'eager'} policy) | "
              f"{r['eval_steps_per_s']:.1f} steps/s = {r['ratio']:.0%} of raw with resets, "
              f"{r['ratio_no_resets']:.0%} of raw without (policy {r['policy_share']:.0%} of wall) |")
        for key, what in (("replay", "through the evaluation env (stage separator in the workers)"),
                          ("plain_replay", "through plain simulator workers (the raw simulator)")):
            replay = r[f"{key}_steps_per_s"]
            print(f"| the same episodes without the policy: the lockstep run's actions replayed {what} | "
                  f"{replay:.1f} steps/s; against it, lockstep {r['eval_steps_per_s'] / replay:.0%}, 2 groups "
                  f"{r['grouped_steps_per_s'] / replay:.0%} |")
        print(f"| closed-loop evaluation, the same workers in 2 groups that take turns (stare-eval's default) | "
              f"{r['grouped_steps_per_s']:.1f} steps/s = {r['grouped_ratio']:.0%} of raw with resets (policy "
              f"{r['grouped_policy_share']:.0%} of wall; successes {r['grouped_successes']} vs lockstep "
              f"{r['successes']}) |")
        print(f"| raw rendered step rate, no resets, with the policy acting (batch 1) in a thread beside it | "
              f"{r['raw_beside_policy_steps_per_s']:.1f} steps/s ({r['policy_calls_beside_per_s']:.0f} actions/s "
              f"beside) |")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
