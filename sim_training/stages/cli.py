"""`stare-stages`: segment recorded episodes into StARe stages and report per-task statistics."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from tqdm import tqdm

from sim_training.data.dataset import INDEX_FILE, Dataset, DatasetError
from stare_policy.stages import STAGE_SPECS, MissingStateError, UnknownStageSpecError, stage_spec


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="stare-stages",
        description="Label every step of recorded episodes with StARe stages (privileged separator where "
        "simulator state was recorded, proprioceptive separator always), print per-task statistics, "
        "and optionally draw a stage timeline and write JSON.",
    )
    parser.add_argument("--data", required=True, type=Path,
                        help="a dataset directory, or a directory holding one dataset per task")
    parser.add_argument("--task", action="append", help=f"only this task (repeatable); one of: {', '.join(STAGE_SPECS)}")
    parser.add_argument("--plot", type=Path, help="write a stage timeline of one episode to this image")
    parser.add_argument("--episode", type=int, default=0, help="episode index for --plot (default 0)")
    parser.add_argument("--json", type=Path, help="write the statistics as JSON to this file")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def find_datasets(root: Path) -> list[Dataset]:
    if (root / INDEX_FILE).is_file():
        return [Dataset(root)]
    if not root.is_dir():
        raise DatasetError(f"{root} does not exist or is not a directory")
    found = [Dataset(d) for d in sorted(root.iterdir()) if (d / INDEX_FILE).is_file()]
    if not found:
        raise DatasetError(f"{root} holds no STARE dataset ({INDEX_FILE} in it or in its subdirectories)")
    return found


def _print_table(task: str, stats: dict) -> None:
    agreement = "n/a" if stats["agreement"] is None else f"{stats['agreement']:.3f}"
    error = stats["transition_error_steps_median"]
    print(f"{task}: {stats['episodes']} episodes, {stats['steps']} steps, labels from {stats['labels_from']}; "
          f"agreement {agreement}, median transition error {'n/a' if error is None else f'{error:g}'} steps")
    for name, fraction in stats["stage_fraction"].items():
        hidden = "" if stats["observable"][name] else "  (entry not observable from proprioception)"
        print(f"  {name:<10} {fraction:6.1%} of steps, reached in {stats['reached'][name]:6.1%} of episodes{hidden}")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    for task in args.task or ():
        if task not in STAGE_SPECS:
            parser.error(str(UnknownStageSpecError(task)))
    if args.episode < 0:
        parser.error(f"--episode must be >= 0, got {args.episode}")

    from sim_training.stages.evaluate import MissingArraysError, label_episodes, task_statistics

    try:
        datasets = [d for d in find_datasets(args.data) if not args.task or d.spec.env_id in args.task]
        if not datasets:
            raise DatasetError(f"no dataset for {', '.join(args.task)} under {args.data}")
        results, plotted = {}, False
        for dataset in datasets:
            stages = stage_spec(dataset.spec.env_id)
            episodes = [dataset.episode(i).arrays for i in
                        tqdm(range(len(dataset)), desc=f"load {dataset.spec.env_id}", unit="ep", disable=args.quiet)]
            labelled = label_episodes(stages, episodes, rate_hz=dataset.spec.control_freq)
            results[dataset.spec.env_id] = task_statistics(stages, labelled)
            _print_table(dataset.spec.env_id, results[dataset.spec.env_id])
            if args.plot and not plotted:
                if args.episode >= len(labelled):
                    raise IndexError(f"--episode {args.episode} is out of range: {dataset.spec.env_id} has "
                                     f"{len(labelled)} episodes")
                from sim_training.stages.plot import plot_timeline

                title = f"{dataset.spec.env_id}, episode {args.episode} (seed {dataset.entries[args.episode]['seed']})"
                plot_timeline(stages, labelled[args.episode], args.plot, title, rate_hz=dataset.spec.control_freq)
                print(f"wrote stage timeline to {args.plot}")
                plotted = True
        if args.json:
            args.json.parent.mkdir(parents=True, exist_ok=True)
            args.json.write_text(json.dumps(results, indent=2) + "\n")
    except (DatasetError, UnknownStageSpecError, MissingStateError, MissingArraysError, IndexError,
            ValueError, OSError) as err:
        print(f"stare-stages: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
