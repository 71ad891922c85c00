"""Held-out success against training budget: `stare-eval` results of one method's checkpoints at several
budgets, drawn as one line per method with its 95 % intervals.

The curves `stare-ipi` draws from PPO's own training episodes are sampled actions on training seeds, a
handful per point; this one is greedy success on evaluation seeds, the figure the results table reports,
so "which method reaches a success rate in fewer env steps" can be read from it.

    stare-curve --series PPO runs/x/eval/sft.json runs/x/eval/ppo-96.json ... \\
                --series StA-PPO runs/x/eval/sft.json runs/x/eval/sta-ppo-96.json ... --out curve.png

A point's env steps are those recorded by the evaluated checkpoint's trainer (`env_steps` in its
`trainer_state.json`; 0 for a checkpoint no interaction phase made, such as SFT).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


class CurveError(ValueError):
    """An evaluation result or checkpoint the curve needs is missing or unreadable."""


def env_steps_of(checkpoint: Path) -> int:
    """Simulator steps the checkpoint's trainer took (0 if it records none: SFT, TPO)."""
    state = checkpoint / "trainer_state.json"
    if not state.is_file():
        return 0
    return int(json.loads(state.read_text()).get("env_steps", 0))


def read_point(eval_json: Path) -> dict:
    """One point: env steps of the evaluated checkpoint, success and its interval, episodes, task."""
    try:
        result = json.loads(Path(eval_json).read_text())
        checkpoint = Path(result["checkpoint"])
        return {"env_steps": env_steps_of(checkpoint), "success_rate": float(result["success_rate"]),
                "ci95": [float(x) for x in result["ci95"]], "episodes": int(result["episodes"]),
                "task": result["task"], "seeds": result["seeds"], "checkpoint": str(checkpoint), "eval": str(eval_json)}
    except OSError as err:
        raise CurveError(f"cannot read {eval_json}: {err.strerror or err}") from None
    except (ValueError, KeyError, TypeError) as err:
        raise CurveError(f"{eval_json} is not a stare-eval result ({err})") from None


def series_points(paths: list[Path]) -> list[dict]:
    """A method's points, by env steps."""
    return sorted((read_point(p) for p in paths), key=lambda p: p["env_steps"])


def plot(series: dict[str, list[dict]], out: Path, title: str) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name, points in series.items():
        x = [p["env_steps"] for p in points]
        y = [p["success_rate"] for p in points]
        err = [[p["success_rate"] - p["ci95"][0] for p in points], [p["ci95"][1] - p["success_rate"] for p in points]]
        ax.errorbar(x, y, yerr=err, marker="o", capsize=4, label=name)
    ax.set(xlabel="env steps of interaction", ylabel="greedy success (95 % CI)", ylim=(0, 1), title=title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="stare-curve", description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--series", nargs="+", action="append", required=True, metavar="NAME_OR_JSON",
                        help="a method's name, then its stare-eval JSON files (repeat for each method)")
    parser.add_argument("--out", type=Path, required=True, help="the PNG to write (a JSON of the points beside it)")
    parser.add_argument("--title", default=None, help="default: the task")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    try:
        series = {}
        for name, *paths in args.series:
            if not paths:
                raise CurveError(f"--series {name}: no evaluation JSON given")
            series[name] = series_points([Path(p) for p in paths])
        tasks = {p["task"] for points in series.values() for p in points}
        if len(tasks) != 1:
            raise CurveError(f"the evaluations are of different tasks: {', '.join(sorted(tasks))}")
        seeds = {tuple(p["seeds"]) for points in series.values() for p in points}
        if len(seeds) != 1:
            raise CurveError(f"the evaluations used different seeds: {sorted(seeds)}; compare like with like")
    except CurveError as err:
        print(f"stare-curve: error: {err}", file=sys.stderr)
        return 1
    task = tasks.pop()
    plot(series, args.out, args.title or f"{task}: held-out success vs env steps")
    args.out.with_suffix(".json").write_text(json.dumps({"task": task, "series": series}, indent=1))
    for name, points in series.items():
        cells = ", ".join(f"{p['env_steps']:,}: {p['success_rate']:.0%} ({p['ci95'][0]:.0%}-{p['ci95'][1]:.0%})"
                          for p in points)
        print(f"{name}: {cells}")
    print(json.dumps({"plot": str(args.out), "points": str(args.out.with_suffix(".json"))}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
