"""How far sampled action tokens land from the greedy ones, on recorded frames of a task.

    .venv/bin/python benchmarks/sampling_spread.py --checkpoint checkpoints/stack-cube-sft-15k \
        --data runs/ipi-stack-15k/rollouts --temperature 0.05 --gripper-temperature 0 --by-outcome
    .venv/bin/python benchmarks/sampling_spread.py ... --greedy-prefix [--window 4]

Rollouts and PPO explore by sampling the arm's tokens at a low temperature, and evaluation acts greedily.
A low temperature keeps samples near the greedy bin only when the token distribution has one mode. This
prints, per action dimension, how often a sample differs from the greedy bin and by how many bins, and the
share of frames where some sample jumps far (a second mode, e.g. at the other end of the range). With
`--by-outcome` on rollouts of this checkpoint (`stare-rollouts`), it also compares every action the rollouts
took with the greedy one, for episodes that succeeded and episodes that failed. `--greedy-prefix` and
`--window` measure the same with the policy's exploration options (`VLA.sample`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch

import sim_training  # noqa: F401  (selects the project's Vulkan driver)
from sim_training.data import Dataset
from stare_policy.model.vla import action_temperature
from stare_policy.policy import VLAPolicy


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True, help="a dataset of the task (demos or rollouts)")
    parser.add_argument("--temperature", type=float, default=0.05, help="the arm tokens' sampling temperature")
    parser.add_argument("--gripper-temperature", type=float, default=0.0)
    parser.add_argument("--window", type=int, default=None, help="sample within this many bins of greedy")
    parser.add_argument("--greedy-prefix", action="store_true", help="sample each token after the greedy ones")
    parser.add_argument("--frames", type=int, default=256, help="frames drawn from the dataset")
    parser.add_argument("--samples", type=int, default=20, help="samples per frame")
    parser.add_argument("--far", type=int, default=16, help="a sample this many bins or more from greedy is far")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--by-outcome", action="store_true",
                        help="also compare every recorded action with the greedy one, by episode success (rollouts)")
    return parser.parse_args(argv)


def policy_inputs(policy: VLAPolicy, episodes: list, frames: list[tuple[int, int]]):
    arrays = [episodes[e].arrays for e, _ in frames]
    image = np.stack([a["image"][t] for a, (_, t) in zip(arrays, frames)])
    keys = [k for k in policy.processor.config.proprio_keys if k in arrays[0]]
    proprio = {k: np.stack([a[k][t] for a, (_, t) in zip(arrays, frames)]) for k in keys}
    return policy.inputs(image, [episodes[e].instruction for e, _ in frames], proprio)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    policy = VLAPolicy.load(args.checkpoint)
    policy.model.eval()
    dataset = Dataset(args.data)
    episodes = [dataset.episode(i) for i in range(len(dataset))]
    every = [(e, t) for e, episode in enumerate(episodes) for t in range(len(episode))]
    rng = np.random.default_rng(args.seed)
    frames = [every[i] for i in np.sort(rng.choice(len(every), min(args.frames, len(every)), replace=False))]
    temperature = action_temperature(args.temperature, args.gripper_temperature)
    generator = torch.Generator().manual_seed(args.seed)
    gaps = []  # (samples, frames, 7) |sampled bin - greedy bin|
    with torch.no_grad():
        for start in range(0, len(frames), args.batch):
            inputs = policy_inputs(policy, episodes, frames[start:start + args.batch])
            greedy = policy.model.sample(inputs, 0.0).bins
            draw = lambda: policy.model.sample(inputs, temperature, generator, args.window,  # noqa: E731
                                               args.greedy_prefix).bins
            gaps.append(np.stack([(draw() - greedy).abs().numpy() for _ in range(args.samples)]))
    gap = np.concatenate(gaps, axis=1)
    dims = gap.shape[-1]
    print(f"{args.checkpoint} on {len(frames)} frames of {args.data} ({len(episodes)} episodes), {args.samples} samples "
          f"each at temperature {args.temperature} (gripper {args.gripper_temperature}), window {args.window}, "
          f"{'greedy' if args.greedy_prefix else 'sampled'} prefix")
    print("dimension:                     " + " ".join(f"{d:>6}" for d in range(dims)))
    print("P(sample != greedy):           " + " ".join(f"{v:6.3f}" for v in (gap > 0).mean(axis=(0, 1))))
    print("mean |sample - greedy| (bins): " + " ".join(f"{v:6.2f}" for v in gap.mean(axis=(0, 1))))
    print("max |sample - greedy| (bins):  " + " ".join(f"{v:6d}" for v in gap.max(axis=(0, 1))))
    print(f"P(sample >= {args.far} bins away):    " + " ".join(f"{v:6.3f}" for v in (gap >= args.far).mean(axis=(0, 1))))
    far_frames = (gap[..., :-1] >= args.far).any(axis=(0, 2)).mean()
    far_steps = (gap[..., :-1] >= args.far).any(axis=2).mean()
    print(f"arm: frames where some sample lands >= {args.far} bins away: {far_frames:.1%}; "
          f"share of sampled actions with such a jump: {far_steps:.1%}")
    if args.by_outcome:
        rollout_gaps(policy, episodes, args)
    return 0


def rollout_gaps(policy: VLAPolicy, episodes: list, args: argparse.Namespace) -> None:
    """The rollouts' own actions against the greedy ones at the same frames, by episode outcome."""
    far = {True: [], False: []}
    with torch.no_grad():
        for e, episode in enumerate(episodes):
            frames = [(e, t) for t in range(len(episode))]
            jumps = 0
            for start in range(0, len(frames), args.batch):
                chunk = frames[start:start + args.batch]
                greedy = policy.model.sample(policy_inputs(policy, episodes, chunk), 0.0).bins.numpy()
                taken = policy.processor.bins(np.asarray(episode.arrays["action"][[t for _, t in chunk]]))
                jumps += int((np.abs(np.asarray(taken) - greedy)[:, :-1] >= args.far).any(axis=1).sum())
            far[bool(episode.success)].append(jumps / len(episode))
    for outcome, rates in far.items():
        if rates:
            print(f"rollouts that {'succeeded' if outcome else 'failed'}: {len(rates)}; share of their steps whose arm "
                  f"action lies >= {args.far} bins from greedy: mean {np.mean(rates):.1%}, median {np.median(rates):.1%}")


if __name__ == "__main__":
    sys.exit(main())
