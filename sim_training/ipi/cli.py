"""`stare-ipi`: Imitation -> Preference -> Interaction on one task, evaluated after each phase.

    stare-ipi --task PickCube-v1 --config sim_training/train/configs/ipi_pick_cube.yaml --out runs/ipi-pick
    stare-ipi --task PickCube-v1 --config ... --out runs/ipi-pick --ablation     # + the baselines, same seeds

SFT (on --demos, or --sft-checkpoint to start from one) -> rollouts of the SFT policy -> StA-TPO -> StA-PPO.
With --ablation the baselines of the same budget run beside it from the same SFT checkpoint and rollouts:
SFT only, SFT -> TPO, SFT -> PPO, SFT -> TPO -> PPO, SFT -> StA-TPO, SFT -> StA-PPO (shared phases run
once). Rerun the same command after a kill: finished phases are skipped and the interrupted one resumes.
The end: `<out>/summary.md` (the results table), `summary.json`, and learning curves `curves_*.png`.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import sys
from pathlib import Path

from sim_training.ipi.methods import DEFAULT_METHODS, METHODS


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stare-ipi", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter,
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]))
    parser.add_argument("--task", default=None, help="task id, e.g. PickCube-v1 (or `task:` in --config)")
    parser.add_argument("--out", required=True, type=Path, help="run directory (resumed if it holds this run)")
    parser.add_argument("--config", default=None, help="YAML of IPIConfig (sections sft, rollouts, tpo, ppo, eval)")
    parser.add_argument("--demos", nargs="+", default=None, help="demonstration datasets for SFT")
    parser.add_argument("--sft-checkpoint", default=None, help="skip SFT training: start from this checkpoint")
    parser.add_argument("--ablation", action="store_true", help="also run the baselines: " + ", ".join(METHODS))
    parser.add_argument("--methods", nargs="+", default=None, metavar="METHOD",
                        help=f"run exactly these methods, of {', '.join(METHODS)} "
                             f"(default: {' '.join(DEFAULT_METHODS)})")
    parser.add_argument("--overwrite", action="store_true", help="delete --out and start afresh")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.add_argument("overrides", nargs="*", help="key=value overrides, e.g. eval.episodes=20 ppo.iterations=5")
    return parser


SECTIONS = ("sft", "tpo", "ppo")
"""Config sections that are free-form mappings, checked against their phase's config class (`check`)."""


def _section(override: str) -> str | None:
    head = override.partition("=")[0].split(".")[0]
    return head if head in SECTIONS and "." in override.partition("=")[0] else None


def with_sections(cfg, overrides: list[str]):
    """`sft.steps=2`, `ppo.num_envs=4`, `sft.model.text_layers=2`: set keys inside the phase sections (which
    the phase's own config class checks later), creating nested mappings as needed."""
    from stare_policy.typed_config import parse_override_value

    sections = {name: copy.deepcopy(getattr(cfg, name)) for name in SECTIONS}
    for item in overrides:
        name = _section(item)
        if name is None:
            continue
        key, _, raw = item.partition("=")
        node, parts = sections[name], key.split(".")[1:]
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = parse_override_value(raw)
    return dataclasses.replace(cfg, **sections)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line, with key=value items written after `--methods` (which takes one or more values)
    returned to the overrides: `--methods sft-ppo ppo.lr=5e-7` means what it reads as."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.methods is not None:
        args.overrides += [m for m in args.methods if "=" in m]
        args.methods = [m for m in args.methods if "=" not in m]
        unknown = [m for m in args.methods if m not in METHODS]
        if unknown or not args.methods:
            parser.error(f"argument --methods: {'invalid choice ' + repr(unknown[0]) if unknown else 'no method'}"
                         f" (choose from {', '.join(METHODS)})")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    from sim_training.ipi.config import IPIConfig, check
    from sim_training.ipi.pipeline import Pipeline
    from sim_training.ipi.report import write_summary
    from stare_policy.typed_config import ConfigError, apply_overrides, load_yaml

    try:
        cfg = load_yaml(args.config, IPIConfig) if args.config else IPIConfig()
        given = {"task": args.task, "demos": tuple(args.demos) if args.demos else None,
                 "sft_checkpoint": args.sft_checkpoint}
        cfg = dataclasses.replace(cfg, **{k: v for k, v in given.items() if v is not None})
        cfg = apply_overrides(with_sections(cfg, args.overrides), [o for o in args.overrides if not _section(o)])
        check(cfg)
        methods = list(METHODS) if args.ablation else (args.methods or list(DEFAULT_METHODS))
        pipe = Pipeline(cfg, args.out, methods, quiet=args.quiet, overwrite=args.overwrite,
                        log=lambda text: print(text, flush=True))
    except (ConfigError, ValueError) as err:
        print(f"stare-ipi: error: {err}", file=sys.stderr)
        return 1
    try:
        code = pipe.run()
    except KeyboardInterrupt:
        print("stare-ipi: interrupted; rerun the same command to resume", file=sys.stderr)
        return 130
    if code >= 128:
        return code
    summary = write_summary(pipe)
    print((args.out / "summary.md").read_text())
    print(json.dumps({"summary": str(args.out / "summary.json"), "plots": summary["plots"], "complete": code == 0}))
    return code


if __name__ == "__main__":
    sys.exit(main())
