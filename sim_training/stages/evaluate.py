"""Segment recorded episodes with both separators and summarise how they agree, per task.

Episodes are dicts of per-step arrays in the dataset format (docs/data-format.md); privileged arrays are
optional (robot bags have none), in which case only the proprioceptive labels and their statistics exist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import numpy as np

from stare_policy.stages import (
    Measures, Segmentation, TaskStages, agreement, segment_privileged, segment_proprio_batch, summarize,
    transition_errors,
)
from stare_policy.stages.calculator import EpisodeSummary


class MissingArraysError(ValueError):
    """An episode lacks the arrays a separator needs."""


@dataclass
class LabelledEpisode:
    arrays: dict[str, np.ndarray]
    proprio: Segmentation
    privileged: Segmentation | None = None
    measures: Measures | None = None
    summary: EpisodeSummary | None = None
    """Stage costs and completion, from the privileged labels."""


def has_privileged(arrays: dict, stages: TaskStages) -> bool:
    return "priv.tcp_pose" in arrays and f"priv.{stages.object}_pose" in arrays


def label_episodes(stages: TaskStages, episodes: Iterable[dict], rate_hz: float) -> list[LabelledEpisode]:
    """Both labellings of each episode (the privileged one where its arrays exist)."""
    episodes = list(episodes)
    for i, arrays in enumerate(episodes):
        missing = [key for key in ("qpos", "action") if key not in arrays]
        if missing:
            raise MissingArraysError(f"episode {i} lacks {', '.join(missing)}: cannot segment it")
    proprio = segment_proprio_batch(stages, [a["qpos"] for a in episodes], [a["action"][:, -1] for a in episodes],
                                    rate_hz=rate_hz)
    out = []
    for arrays, seg in zip(episodes, proprio):
        item = LabelledEpisode(arrays, seg)
        if has_privileged(arrays, stages):
            item.privileged, item.measures = segment_privileged(arrays, stages)
            success = bool(arrays["flag.success"][-1]) if "flag.success" in arrays else None
            item.summary = summarize(item.privileged, item.measures, stages, success)
        out.append(item)
    return out


def observable_stages(stages: TaskStages) -> np.ndarray:
    """Label map that folds each stage whose start proprioception cannot see into the stage before it
    (index -1, UNKNOWN, maps to itself): agreement on what is observable."""
    merge = np.arange(len(stages) + 1)
    for k in range(1, len(stages)):
        if not stages.stages[k].observable:
            merge[k] = merge[k - 1]
    merge[-1] = -1
    return merge


def task_statistics(stages: TaskStages, labelled: list[LabelledEpisode]) -> dict:
    """The `stare-stages --json` entry of one task."""
    both = [e for e in labelled if e.privileged is not None]
    reference = [e.privileged if e.privileged is not None else e.proprio for e in labelled]
    steps = max(sum(len(s) for s in reference), 1)
    fraction = {name: float(sum((s.labels == k).sum() for s in reference) / steps)
                for k, name in enumerate(stages.names)}
    stats: dict = {
        "episodes": len(labelled),
        "steps": int(sum(len(s) for s in reference)),
        "labels_from": "privileged" if both else "proprioceptive",
        "agreement": None,
        "transition_error_steps_median": None,
        "stage_fraction": fraction,
        "reached": {name: float(np.mean([s.furthest >= k for s in reference])) for k, name in enumerate(stages.names)},
        "observable": {s.name: s.observable for s in stages.stages},
        "events": _event_counts(labelled),
    }
    if both:
        errors, unmatched = [], 0
        for e in both:
            err, miss = transition_errors(e.privileged, e.proprio)
            errors += err
            unmatched += miss
        total = max(sum(len(e.proprio) for e in both), 1)
        same = sum(int((e.privileged.labels == e.proprio.labels).sum()) for e in both)
        merge = observable_stages(stages)
        same_seen = sum(int((merge[e.privileged.labels] == merge[e.proprio.labels]).sum()) for e in both)
        stats.update(
            agreement=same / total,
            agreement_observable=same_seen / total,
            agreement_episode_min=min(agreement(e.privileged.labels, e.proprio.labels) for e in both),
            transition_error_steps_median=float(np.median(errors)) if errors else None,
            transition_error_steps_max=int(max(errors)) if errors else None,
            transitions_unmatched=unmatched,
            stage_cost_mean={s.name: float(np.mean([e.summary.costs[k] for e in both]))
                             for k, s in enumerate(stages.stages)},
        )
    return stats


def _event_counts(labelled: list[LabelledEpisode]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for e in labelled:
        for source, seg in (("proprio", e.proprio), ("privileged", e.privileged)):
            for _, name in (seg.events if seg is not None else []):
                counts[f"{source}.{name}"] = counts.get(f"{source}.{name}", 0) + 1
    return counts
