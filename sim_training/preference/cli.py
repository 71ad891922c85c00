"""`stare-rollouts`: K sampled rollouts of a policy from each of N initial states, written as a dataset
(docs/data-format.md) for StARe labelling (`stare-stages`) and preference pairs (`stare-train tpo|sta-tpo`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from sim_training.sampling_args import add_sampling_arguments, sampling_error

ROLLOUT_SEED_START = 2_000_000
"""Initial states for preference rollouts: apart from demo seeds (0..), validation (500,000..) and
evaluation (1,000,000..)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stare-rollouts", description="Sample K rollouts of a policy from each of N initial states and write "
        "them as a dataset with privileged state, for StARe labels and preference pairs.")
    parser.add_argument("--checkpoint", required=True, type=Path, help="policy checkpoint directory")
    parser.add_argument("--task", required=True, help="task id, e.g. PickCube-v1")
    parser.add_argument("--initial-states", type=int, required=True, help="N: initial states (env seeds)")
    parser.add_argument("--per-state", type=int, required=True, help="K: rollouts from each initial state")
    add_sampling_arguments(parser, default_temperature=1.0)
    parser.add_argument("--seed-start", type=int, default=ROLLOUT_SEED_START,
                        help=f"first initial-state seed (default {ROLLOUT_SEED_START})")
    parser.add_argument("--max-steps", type=int, default=None, help="step limit (default: the task's)")
    parser.add_argument("--out", required=True, type=Path, help="dataset directory to create")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.add_argument("--device", default="cpu", help="policy device (cpu, cuda)")
    parser.add_argument("--workers", type=int, default=1,
                        help="simulator processes; K > 1 batches the policy over them (reproducible for the same K)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    for name in ("initial_states", "per_state", "workers"):
        if getattr(args, name) < 1:
            print(f"stare-rollouts: error: --{name.replace('_', '-')} must be >= 1", file=sys.stderr)
            return 2
    problem = sampling_error(args)
    if problem:
        print(f"stare-rollouts: error: {problem}", file=sys.stderr)
        return 2
    if args.out.exists() and not args.overwrite:
        print(f"stare-rollouts: error: {args.out} exists (pass --overwrite to replace it)", file=sys.stderr)
        return 1
    from tqdm import tqdm

    from sim_training.data import DatasetWriter
    from sim_training.preference.rollouts import PolicyRolloutGenerator, rollouts, vector_rollouts
    from sim_training.tasks import UnknownTaskError, get_task
    from stare_policy.model import CheckpointError
    from stare_policy.policy import VLAPolicy

    try:
        spec = get_task(args.task)
        policy = VLAPolicy.load(args.checkpoint, args.device)
    except (UnknownTaskError, CheckpointError, FileNotFoundError) as err:
        print(f"stare-rollouts: error: {err}", file=sys.stderr)
        return 1
    from stare_policy.model.vla import action_temperature

    temperature = action_temperature(args.temperature, args.gripper_temperature)
    generator = PolicyRolloutGenerator(policy, spec, temperature, args.max_steps, window=args.window,
                                       greedy_prefix=args.greedy_prefix) \
        if args.workers == 1 else None
    seeds = list(range(args.seed_start, args.seed_start + args.initial_states))
    total = args.initial_states * args.per_state
    source = {"checkpoint": str(args.checkpoint), "temperature": args.temperature,
              "gripper_temperature": args.gripper_temperature, "window": args.window,
              "greedy_prefix": args.greedy_prefix, "per_state": args.per_state,
              "initial_states": seeds, "workers": args.workers}
    wins = 0
    try:
        with DatasetWriter(args.out, spec, overwrite=args.overwrite, source=source) as writer, \
                tqdm(total=total, desc=f"{spec.env_id} rollouts", unit="ep", disable=args.quiet) as bar:
            episodes = rollouts(generator, seeds, args.per_state) if generator else vector_rollouts(
                policy, spec, [(s, k) for s in seeds for k in range(args.per_state)], args.workers, temperature,
                max_steps=args.max_steps, window=args.window, greedy_prefix=args.greedy_prefix)
            for episode in episodes:
                writer.add(episode)
                wins += episode.success
                bar.update()
                bar.set_postfix(success=f"{wins}/{bar.n}")
            writer.commit()
    finally:
        if generator:
            generator.close()
    print(json.dumps({"task": spec.env_id, "rollouts": total, "successes": wins, "out": str(args.out)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
