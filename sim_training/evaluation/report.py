"""Evaluation results: summary statistics (Wilson interval), JSON, Markdown table, bar plot, mp4 videos."""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sim_training.evaluation.rollout import EpisodeRecord


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """95 % Wilson score interval of a binomial proportion (well-behaved at 0 %, 100 % and small n)."""
    if n <= 0:
        return (0.0, 1.0)
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (max(0.0, centre - half), min(1.0, centre + half))


@dataclass
class EvalSummary:
    task: str
    episodes: int
    success_rate: float
    ci95: tuple[float, float]
    mean_length: float
    stage_completion: dict[str, float]
    seeds: tuple[int, int]
    """First and last seed (consecutive)."""
    extra: dict[str, Any] = field(default_factory=dict)
    """Run details: checkpoint, instruction, temperature, workers, timing; and the per-episode results
    (`per_episode`: seed, success, length, furthest stage) that `stare-compare` pairs by seed."""

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ci95"], data["seeds"] = list(self.ci95), list(self.seeds)
        return {**{k: v for k, v in data.items() if k != "extra"}, **self.extra}


def summarize(task: str, records: Sequence[EpisodeRecord], stage_completion: dict[str, float],
              extra: dict[str, Any] | None = None) -> EvalSummary:
    n = len(records)
    wins = sum(r.success for r in records)
    return EvalSummary(
        task=task,
        episodes=n,
        success_rate=wins / n if n else 0.0,
        ci95=wilson_interval(wins, n),
        mean_length=float(np.mean([r.length for r in records])) if n else 0.0,
        stage_completion=stage_completion,
        seeds=(records[0].seed, records[-1].seed) if n else (0, 0),
        extra={**(extra or {}), "per_episode": [
            {"seed": r.seed, "success": r.success, "length": r.length, "furthest_stage": r.furthest_stage}
            for r in records]},
    )


def write_json(path: str | Path, data: Any) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def markdown_table(summaries: Sequence[EvalSummary]) -> str:
    stage_cols: list[str] = []
    for s in summaries:
        stage_cols += [name for name in s.stage_completion if name not in stage_cols]
    head = ["task", "episodes", "success", "95 % CI", "mean length", *[f"{n} done" for n in stage_cols]]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for s in summaries:
        stages = [f"{s.stage_completion[n]:.0%}" if n in s.stage_completion else "" for n in stage_cols]
        lines.append("| " + " | ".join([s.task, str(s.episodes), f"{s.success_rate:.0%}",
                                         f"{s.ci95[0]:.0%}-{s.ci95[1]:.0%}", f"{s.mean_length:.1f}", *stages]) + " |")
    return "\n".join(lines) + "\n"


def bar_plot(summaries: Sequence[EvalSummary], path: str | Path, title: str = "") -> None:
    """One group per task: stage completion bars, then success with its 95 % interval."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(1.5 + 2.2 * len(summaries), 3.6), dpi=120)
    width = 0.8
    for i, s in enumerate(summaries):
        names = [*s.stage_completion, "success"]
        values = [*s.stage_completion.values(), s.success_rate]
        w = width / len(names)
        xs = i + (np.arange(len(names)) - (len(names) - 1) / 2) * w
        colours = [plt.cm.Blues(0.35 + 0.5 * j / max(1, len(names) - 1)) for j in range(len(names) - 1)] + ["tab:green"]
        ax.bar(xs, values, w * 0.95, color=colours)
        lo, hi = s.ci95
        ax.errorbar(xs[-1], s.success_rate, yerr=[[s.success_rate - lo], [hi - s.success_rate]], fmt="none",
                    ecolor="black", capsize=3)
        for x, name in zip(xs, names):
            ax.text(x, 0.01, name, rotation=90, ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(summaries)), [f"{s.task}\n(n={s.episodes})" for s in summaries], fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel("fraction of episodes")
    ax.set_title(title or "success (95 % Wilson CI) and stage completion", fontsize=9)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def write_video(frames: Sequence[np.ndarray], path: str | Path, fps: int, scale: int = 2) -> None:
    """H.264 mp4 of uint8 RGB frames (upscaled by `scale`, nearest neighbour, for viewing)."""
    import imageio.v2 as imageio

    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with imageio.get_writer(str(path), fps=fps, codec="libx264", quality=7, macro_block_size=16) as writer:
        for frame in frames:
            writer.append_data(np.repeat(np.repeat(np.asarray(frame), scale, axis=0), scale, axis=1))
