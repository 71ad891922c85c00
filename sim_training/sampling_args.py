"""The action-sampling flags `stare-eval` and `stare-rollouts` share (temperature, the gripper's
temperature, a window around the greedy bins, a greedy prefix: `VLA.sample`), declared and checked once."""

from __future__ import annotations

import argparse


def add_sampling_arguments(parser: argparse.ArgumentParser, default_temperature: float) -> None:
    parser.add_argument("--temperature", type=float, default=default_temperature,
                        help=f"action sampling temperature (default {default_temperature:g}; 0: greedy)")
    parser.add_argument("--gripper-temperature", type=float, default=None,
                        help="the gripper token's temperature (default: --temperature; 0: greedy gripper)")
    parser.add_argument("--window", type=int, default=None,
                        help="with a temperature: sample each token within this many bins of the greedy one "
                             "(default: anywhere)")
    parser.add_argument("--greedy-prefix", action="store_true",
                        help="with a temperature: sample each token given the greedy tokens before it, "
                             "not the sampled ones")


def sampling_error(args: argparse.Namespace) -> str | None:
    """What is wrong with the parsed sampling flags, or None."""
    if min(args.temperature, args.gripper_temperature or 0, args.window or 0) < 0:
        return "--temperature, --gripper-temperature and --window must be >= 0"
    return None
