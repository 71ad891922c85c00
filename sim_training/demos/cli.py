"""`stare-demos`: expert demonstrations for a task, written as a STARE dataset."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
from pathlib import Path

from sim_training.tasks import TASKS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stare-demos",
        description="Run a task's expert (ManiSkill3's motion planner, converted to end-effector delta actions, "
        "or a scripted closed-loop controller), render the policy camera, and write a dataset "
        "(docs/data-format.md).",
    )
    planned = [t for t, spec in TASKS.items() if spec.motion_planner or spec.expert == "scripted"]
    parser.add_argument("--task", required=True, help=f"task id, one of: {', '.join(planned)}")
    parser.add_argument("--episodes", "-n", type=int, required=True, help="number of demos to write")
    parser.add_argument("--out", required=True, type=Path, help="dataset directory to create")
    parser.add_argument("--workers", type=int, default=1, help="simulator processes (default 1)")
    parser.add_argument("--seed-start", type=int, default=0, help="first env seed (default 0)")
    parser.add_argument("--max-attempts", type=int, default=None, help="seeds to try at most (default 3N+10)")
    parser.add_argument("--expert", choices=("planner", "scripted"), default=None,
                        help="demonstrator (default: the task's own, TaskSpec.expert)")
    parser.add_argument("--hold-steps", type=int, default=None,
                        help="scripted experts: steps recorded after the first success (default 5)")
    parser.add_argument("--action-noise", type=float, default=0.0,
                        help="scripted experts: std of Gaussian noise added to the executed translation "
                             "command (normalised, 0.1 = 1 cm); the expert's own command is recorded, so "
                             "demos show corrections from off-path states (DART). Default 0")
    parser.add_argument("--keep-failed", action="store_true", help="also keep demos that did not succeed")
    parser.add_argument("--overwrite", action="store_true", help="replace --out if it exists")
    parser.add_argument("--json", type=Path, default=None, help="write a summary of the run to this file")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _check_writable(path: Path) -> None:
    """Fail before any simulation if the output cannot be created."""
    parent = path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=parent):
            pass
    except OSError as err:
        raise PermissionError(f"cannot write to {parent}: {err.strerror or err}") from None


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.task not in TASKS:
        parser.error(f"unknown task {args.task!r}; known tasks: {', '.join(TASKS)}")
    if args.episodes <= 0:
        parser.error(f"--episodes must be positive, got {args.episodes}")
    if args.workers <= 0:
        parser.error(f"--workers must be positive, got {args.workers}")
    if args.hold_steps is not None and args.hold_steps < 0:
        parser.error(f"--hold-steps must be >= 0, got {args.hold_steps}")
    if not (math.isfinite(args.action_noise) and args.action_noise >= 0):
        parser.error(f"--action-noise must be a finite number >= 0, got {args.action_noise}")
    if args.action_noise and (args.expert or TASKS[args.task].expert) != "scripted":
        parser.error("--action-noise needs a scripted expert (--expert scripted)")
    if args.max_attempts is not None and args.max_attempts < args.episodes:
        parser.error("--max-attempts must be at least --episodes")
    if args.out.exists() and not args.overwrite:
        parser.error(f"{args.out} already exists (pass --overwrite to replace it)")

    from sim_training.demos.collect import collect_demos
    from sim_training.demos.expert import NoPlannerError
    from sim_training.demos.scripted import NoScriptError
    from sim_training.envs.assets import MissingAssetsError

    try:
        for path in filter(None, (args.out, args.json)):
            _check_writable(path)
        report = collect_demos(
            args.task, args.episodes, args.out, workers=args.workers, seed_start=args.seed_start,
            max_attempts=args.max_attempts, keep_failed=args.keep_failed, overwrite=args.overwrite,
            progress=not args.quiet, expert=args.expert, action_noise=args.action_noise,
            **({} if args.hold_steps is None else {"hold_steps": args.hold_steps}),
        )
    except (MissingAssetsError, NoPlannerError, NoScriptError, PermissionError, FileExistsError, RuntimeError) as err:
        print(f"stare-demos: error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("stare-demos: interrupted; nothing was written", file=sys.stderr)
        return 130
    summary = report.to_dict()
    if args.json:
        _write_json(args.json, summary)
    print(
        f"wrote {report.written} demos of {report.task} to {report.out} in {report.seconds:.1f} s "
        f"({report.demos_per_second:.3f} demos/s, {report.expert} expert, "
        f"planner success {report.planner_success_rate:.0%} over {report.attempts} seeds)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
