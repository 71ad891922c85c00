"""`stare-eval`: closed-loop evaluation of a policy checkpoint on ManiSkill3 tasks.

    stare-eval --checkpoint runs/sft-pick --task PickCube-v1 --episodes 100 --workers 2 --videos 3 \\
               --json runs/sft-pick.eval/PickCube-v1.json

Writes into --out (default <checkpoint>.eval/): results.md (Markdown table), results.png (bar plot),
<task>.json, and K mp4 videos per task. --json also writes the summary there: one object for one task,
a list for several.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from sim_training.evaluation.evaluate import EVAL_SEED_START
from sim_training.sampling_args import add_sampling_arguments, sampling_error


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stare-eval", description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, type=Path, help="policy checkpoint directory")
    parser.add_argument("--task", required=True, nargs="+", help="task id(s), e.g. PickCube-v1")
    parser.add_argument("--episodes", "-n", type=int, default=100, help="episodes per task (default 100)")
    parser.add_argument("--seed-start", type=int, default=EVAL_SEED_START,
                        help=f"first env seed (default {EVAL_SEED_START:,}; demos use seeds from 0)")
    parser.add_argument("--workers", type=int, default=2, help="CPU simulator processes, or GPU envs (default 2)")
    parser.add_argument("--env-groups", type=int, default=2,
                        help="CPU workers split into groups that take turns, so the policy acts for one group "
                             "while the others simulate (default 2; 1: all workers in lockstep)")
    parser.add_argument("--sim-backend", choices=("auto", "cpu", "gpu"), default="auto",
                        help="'auto': GPU simulation when CUDA is available")
    parser.add_argument("--device", default="auto", help="policy device: auto, cpu or cuda")
    add_sampling_arguments(parser, default_temperature=0.0)
    parser.add_argument("--instruction", default=None, help="instruction (default: the task's canonical one)")
    parser.add_argument("--videos", type=int, default=0, help="mp4 videos of the first K episodes per task")
    parser.add_argument("--out", type=Path, default=None, help="output directory (default <checkpoint>.eval)")
    parser.add_argument("--json", type=Path, default=None, help="also write the JSON summary here")
    parser.add_argument("--threads", type=int, default=0, help="torch threads for the policy (0: default)")
    parser.add_argument("--compile", action="store_true",
                        help="greedy actions through one torch.compile graph (VLAPolicy.compile): faster per step, "
                             "after a compile of tens of seconds at the first step")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def camera_trained_for(trained_tasks: list[dict], env_id: str):
    """The camera a checkpoint saw `env_id` through (None if it was not trained for it)."""
    from sim_training.tasks import CameraSpec

    for task in trained_tasks:
        if task.get("env_id") == env_id:
            return CameraSpec.from_dict(task["camera"])
    return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from sim_training.tasks import TASKS

    unknown = [t for t in args.task if t not in TASKS]
    if unknown:
        parser.error(f"unknown task {unknown[0]!r}; known tasks: {', '.join(TASKS)}")
    for name in ("episodes", "workers", "env_groups"):
        if getattr(args, name) <= 0:
            parser.error(f"--{name.replace('_', '-')} must be positive, got {getattr(args, name)}")
    if args.videos < 0:
        parser.error(f"--videos must be >= 0, got {args.videos}")
    problem = sampling_error(args)
    if problem:
        parser.error(problem)

    import torch
    from tqdm import tqdm

    from sim_training.envs.assets import MissingAssetsError
    from sim_training.envs.gpu_physics import GpuSimulationError
    from sim_training.evaluation.evaluate import evaluate
    from sim_training.evaluation.report import bar_plot, markdown_table, write_json
    from stare_policy.model import CheckpointError, PolicyInputError
    from stare_policy.policy import VLAPolicy

    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = torch.cuda.is_available()
    device = ("cuda" if cuda else "cpu") if args.device == "auto" else args.device
    backend = ("gpu" if cuda else "cpu") if args.sim_backend == "auto" else args.sim_backend
    out = args.out or args.checkpoint.with_name(args.checkpoint.name + ".eval")
    try:
        policy = VLAPolicy.load(args.checkpoint, device)
        if args.compile:
            policy.compile()
        trained_for = {t.get("env_id") for t in policy.tasks}
        summaries = []
        for task in args.task:
            trained_camera = camera_trained_for(policy.tasks, task)
            if trained_camera is not None and trained_camera != TASKS[task].camera:
                raise PolicyInputError(
                    f"{args.checkpoint} was trained on {task} seen through {trained_camera}, but the task's camera "
                    f"is now {TASKS[task].camera}; its success here would not measure the policy")
            if task not in trained_for:
                print(f"stare-eval: note: {args.checkpoint} was trained for {sorted(trained_for)}, not {task}",
                      file=sys.stderr)
            bar = tqdm(total=args.episodes, desc=task, unit="ep", disable=args.quiet, dynamic_ncols=True)
            wins = []

            def done(rec, bar=bar, wins=wins):
                wins.append(rec.success)
                bar.update(1)
                bar.set_postfix(success=f"{sum(wins)}/{len(wins)}")

            summary = evaluate(policy, TASKS[task], episodes=args.episodes, seed_start=args.seed_start,
                               workers=args.workers, env_groups=args.env_groups, sim_backend=backend,
                               temperature=args.temperature, gripper_temperature=args.gripper_temperature,
                               window=args.window, greedy_prefix=args.greedy_prefix,
                               instruction=args.instruction, videos=args.videos, video_dir=out / "videos",
                               on_episode=done)
            bar.close()
            summary.extra = {"checkpoint": str(args.checkpoint), "date": time.strftime("%Y-%m-%d"), **summary.extra}
            write_json(out / f"{task}.json", summary.to_dict())
            summaries.append(summary)
    except (CheckpointError, PolicyInputError, MissingAssetsError, GpuSimulationError) as err:
        print(f"stare-eval: error: {err}", file=sys.stderr)
        return 1
    table = markdown_table(summaries)
    (out / "results.md").write_text(table)
    bar_plot(summaries, out / "results.png", title=f"{args.checkpoint.name}: success (95 % CI) and stage completion")
    if args.json:
        data = [s.to_dict() for s in summaries]
        write_json(args.json, data[0] if len(data) == 1 else data)
    print(table, end="")
    print(f"wrote {out / 'results.md'}, {out / 'results.png'}" + (f", {args.json}" if args.json else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
