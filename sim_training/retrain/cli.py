"""`stare-retrain`: one preference round from recorded episode bags.

    stare-retrain --bags runs/demo/bags --checkpoint checkpoints/pick-cube-sft --out runs/retrain-1 \\
                  [--method sta-tpo|tpo] [--reference data/demos/PickCube-v1-scripted] [--json PATH] [k=v ...]

bags -> episodes (`sim_training.bags`) -> StARe labels and robot stage costs -> pairs -> StA-TPO (or TPO)
with CKPT as start and frozen reference -> NEW, a checkpoint whose trainer state lists the bags it used.
Rerunning the same command after a kill resumes the round.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

from sim_training.train.tpo import TPOConfig

DEFAULT_STEPS = 100


class RetrainError(RuntimeError):
    """Bad input for a retraining round (no bags, several tasks, no pairs, no reference)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stare-retrain", description=__doc__.splitlines()[0])
    parser.add_argument("--bags", required=True, nargs="+", type=Path,
                        help="episode bags, or directories searched for them (episode_logger output)")
    parser.add_argument("--checkpoint", required=True, type=Path, help="the policy that recorded them: start and reference")
    parser.add_argument("--out", required=True, type=Path, help="the new checkpoint (resumed if it holds this round)")
    parser.add_argument("--method", choices=("sta-tpo", "tpo"), default="sta-tpo")
    parser.add_argument("--reference", nargs="*", type=Path, default=None,
                        help="demonstration datasets whose per-stage medians normalise the robot stage costs "
                             "(default: the checkpoint's SFT data where it is on disk, else the bags' successes)")
    parser.add_argument("--task", default="", help="task of bags that do not name one")
    parser.add_argument("--max-initial-distance", type=float, default=None, metavar="M",
                        help="pair only episodes whose initial tool (and object) positions lie within M metres")
    parser.add_argument("--config", default=None, help="YAML file of TPOConfig fields")
    parser.add_argument("--json", type=Path, default=None, help="write the round's summary here")
    parser.add_argument("--overwrite", action="store_true", help="start afresh even if --out holds a run")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("overrides", nargs="*", help=f"key=value TPOConfig overrides (default steps={DEFAULT_STEPS})")
    return parser


def reference_episodes(paths: list[Path] | None, checkpoint: Path, task: str, successes: list) -> tuple[list, str]:
    """(reference episodes, where they came from)."""
    from sim_training.data import Dataset, DatasetError

    if paths is None:
        state = checkpoint / "trainer_state.json"
        recorded = json.loads(state.read_text()).get("data", []) if state.is_file() else []
        paths = [Path(p) for p in recorded if (Path(p) / "dataset.json").is_file()]
        if not paths:
            if not successes:
                raise RetrainError("no reference for the stage costs: the checkpoint's SFT data is not on disk and "
                                   "no bag is a success; pass --reference DATASET")
            return successes, "successful bags"
    episodes = []
    for path in paths:
        try:
            dataset = Dataset(path)
        except DatasetError as err:
            raise RetrainError(f"--reference: {err}") from None
        if dataset.spec.env_id == task:
            episodes += list(dataset)
    if not episodes:
        raise RetrainError(f"--reference: no {task} episodes in {', '.join(map(str, paths))}")
    return episodes, ", ".join(map(str, paths))


def run(args: argparse.Namespace) -> dict:
    from sim_training.bags import BagReaderConfig, read_bags
    from sim_training.retrain.label import label, pairs_of, stage_reference
    from sim_training.tasks import UnknownTaskError, get_task
    from sim_training.train.tpo import check_config, pairing_rule, train_on_pairs
    from stare_policy.typed_config import apply_overrides, load_yaml

    t0 = time.perf_counter()
    overrides = [f"steps={DEFAULT_STEPS}", *args.overrides]
    cfg = check_config(apply_overrides(load_yaml(args.config, TPOConfig) if args.config else TPOConfig(), overrides))
    if not (args.checkpoint / "config.json").is_file():
        raise RetrainError(f"--checkpoint {args.checkpoint} is not a policy checkpoint (no config.json)")
    read = read_bags(args.bags, BagReaderConfig(task=args.task))
    if not read.episodes:
        reasons = "; ".join(f"{s.bag}: {s.reason}" for s in read.skipped[:3]) or "no bags found"
        raise RetrainError(f"no usable episodes in {', '.join(map(str, args.bags))} ({reasons})")
    tasks = sorted({e.extra.get("task", "") for e in read.episodes})
    if len(tasks) != 1:
        raise RetrainError(f"bags of several tasks {tasks}: retrain one task per round (pass its bags only)")
    try:
        spec = get_task(tasks[0])
    except UnknownTaskError as err:
        raise RetrainError(str(err)) from None
    if spec.stages is None:
        raise RetrainError(f"{spec.env_id} has no StARe stage spec: its episodes cannot be labelled")
    stage_aware = args.method == "sta-tpo"
    successes = [e for e in read.episodes if e.success]
    reference, reference_source = reference_episodes(args.reference, args.checkpoint, spec.env_id, successes)
    labelled = label(read.episodes, spec, stage_reference(reference, spec), need_outcome=not stage_aware)
    rule = pairing_rule(cfg, group_by="instruction", max_initial_distance_m=args.max_initial_distance)
    pairs, per_stage = pairs_of(labelled, rule, stage_aware)
    summary = {
        "method": args.method, "task": spec.env_id, "checkpoint": str(args.checkpoint), "out": str(args.out),
        "bags_found": len(read.episodes) + len(read.skipped), "episodes_read": len(read.episodes),
        "episodes_used": len(labelled.episodes), "successes": len(successes),
        "truncated": sum(bool(e.extra.get("truncated")) for e in read.episodes),
        "skipped": [{"bag": s.bag, "reason": s.reason} for s in read.skipped] + labelled.skipped,
        "labelled_from_object_poses": labelled.privileged, "reference": reference_source,
        "pairing": dataclasses.asdict(rule),
        "pairs": len(pairs), "pairs_per_stage": per_stage,
    }
    if not pairs:
        raise RetrainError(f"the {len(labelled.episodes)} episodes give no {'stage' if stage_aware else 'success/failure'}"
                           f" pairs (pairs per stage: {per_stage}); record more episodes")
    bags = [e.extra.get("bag", "") for e in labelled.episodes]
    code = train_on_pairs(cfg, start=args.checkpoint, out=args.out, episodes=labelled.episodes, pairs=pairs,
                          task=spec.env_id, stage_aware=stage_aware,
                          record={"bags": bags, "retrain": {k: v for k, v in summary.items() if k != "skipped"}},
                          overwrite=args.overwrite, quiet=args.quiet)
    progress = args.out / "progress.jsonl"
    rows = [json.loads(x) for x in progress.read_text().splitlines() if x.strip()] if progress.is_file() else []
    summary.update(exit_code=code, steps=rows[-1]["step"] if rows else 0,
                   final_loss=rows[-1]["loss"] if rows else None,
                   final_accuracy=rows[-1]["accuracy"] if rows else None,
                   seconds=round(time.perf_counter() - t0, 1))
    return summary


def main(argv: list[str] | None = None) -> int:
    from sim_training.data import DatasetError
    from sim_training.train import TrainError
    from stare_policy.model.checkpoint import CheckpointError
    from stare_policy.typed_config import ConfigError

    args = build_parser().parse_args(argv)
    try:
        summary = run(args)
    except (RetrainError, TrainError, CheckpointError, ConfigError, DatasetError, ValueError) as err:
        print(f"stare-retrain: error: {err}", file=sys.stderr)
        return 1
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"stare-retrain: {summary['episodes_used']}/{summary['episodes_read']} episodes, {summary['pairs']} pairs "
          f"{summary['pairs_per_stage']}, {summary['steps']} {summary['method']} steps, final loss "
          f"{summary['final_loss']:.4f} in {summary['seconds']:.0f} s; checkpoint {args.out}", flush=True)
    return summary["exit_code"]


if __name__ == "__main__":
    sys.exit(main())
