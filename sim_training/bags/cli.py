"""`stare-export`: episode bags -> a LeRobot v3 dataset (or a STARE dataset).

    stare-export --bags runs/demo/bags --format lerobot --out data/lerobot/pick-cube
    stare-export --bags runs/demo/bags other/bags --format stare --task PickCube-v1 --out data/bags/pick-cube

Every bag below --bags is read (docs/data-format.md#episodes-from-bags); a bag that gives no episode is
listed with the reason and skipped. --json writes {"format", "out", "bags", "episodes", "frames",
"truncated", "skipped": [{"bag", "reason"}], "seconds"}. Exits 1 with one line when no episode is left or
the output cannot be written.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

FORMATS = ("lerobot", "stare")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stare-export", description=__doc__.splitlines()[0])
    parser.add_argument("--bags", required=True, nargs="+", type=Path,
                        help="bag directories, or directories of them")
    parser.add_argument("--format", required=True, choices=FORMATS,
                        help="lerobot: LeRobot v3; stare: docs/data-format.md")
    parser.add_argument("--out", required=True, type=Path, help="dataset directory to write")
    parser.add_argument("--task", default="", help="only bags of this task; also the task of bags that name none")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing --out")
    parser.add_argument("--fps", type=int, default=0, help="lerobot: frames per second (default: the task's rate)")
    parser.add_argument("--vcodec", default="libx264", help="lerobot: ffmpeg encoder, libx264 or libsvtav1")
    parser.add_argument("--crf", type=int, default=18, help="lerobot: encoder quality, lower is better (default 18)")
    parser.add_argument("--json", type=Path, default=None, help="write the summary here")
    parser.add_argument("--quiet", action="store_true", help="only the summary line")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from sim_training.bags import BagReaderConfig, find_bags, iter_bags
    from sim_training.bags.lerobot_v3 import LeRobotExportConfig, export_lerobot
    from sim_training.bags.stare_dataset import export_stare
    from sim_training.tasks import TASKS

    if args.task and args.task not in TASKS:
        print(f"stare-export: unknown task {args.task!r}; known tasks: {', '.join(TASKS)}", file=sys.stderr)
        return 1
    missing = [str(p) for p in args.bags if not p.exists()]
    if missing:
        print(f"stare-export: no such bag directory: {', '.join(missing)}", file=sys.stderr)
        return 1
    if args.out.exists() and not args.overwrite:
        print(f"stare-export: {args.out} already exists (pass --overwrite to replace it)", file=sys.stderr)
        return 1
    start = time.perf_counter()
    bags = find_bags(args.bags)
    episodes, skipped = [], []
    for bag, result in iter_bags(bags, BagReaderConfig(task=args.task)):
        if isinstance(result, Exception):
            skipped.append({"bag": str(bag), "reason": result.problem})
        elif args.task and result.extra["task"] != args.task:
            skipped.append({"bag": str(bag), "reason": f"task {result.extra['task']}, not {args.task}"})
        else:
            episodes.append(result)
    if not args.quiet:
        for skip in skipped:
            print(f"skipped {skip['bag']}: {skip['reason']}")
    if not episodes:
        print(f"stare-export: no episode to export ({len(bags)} bags found, {len(skipped)} skipped)", file=sys.stderr)
        return 1
    try:
        if args.format == "lerobot":
            config = LeRobotExportConfig(fps=args.fps, vcodec=args.vcodec, crf=args.crf)
            export_lerobot(episodes, args.out, config=config, overwrite=args.overwrite)
        else:
            export_stare(episodes, args.out, overwrite=args.overwrite)
    except (OSError, ValueError) as err:
        print(f"stare-export: {err}", file=sys.stderr)
        return 1
    summary = {"format": args.format, "out": str(args.out), "bags": len(bags), "episodes": len(episodes),
               "frames": sum(len(e) for e in episodes),
               "truncated": sum(bool(e.extra.get("truncated")) for e in episodes), "skipped": skipped,
               "seconds": round(time.perf_counter() - start, 2)}
    print(f"stare-export: {summary['episodes']} episodes ({summary['frames']} frames, {summary['truncated']} "
          f"truncated) from {len(bags)} bags -> {args.out} ({args.format}); {len(skipped)} skipped")
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
