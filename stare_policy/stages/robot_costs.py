"""Stage costs from what a robot records: no object state, so l_k measures how a stage was executed.

On hardware the privileged measures behind `calculator.COSTS` (object distances, grasp flags) do not
exist. What a bag holds is the proprioceptive segmentation, the tool pose from forward kinematics and
the operator's outcome label. For stage k, over its steps, with a reference (the median over
demonstrations of the same task, segmented the same way):

    l_k = w_duration * max(0, T_k / T_ref_k - 1)      slower than the demonstrations
        + w_path     * max(0, P_k / P_ref_k - 1)      a longer tool path (m) than theirs
        + w_jerk     * max(0, J_k / J_ref_k - 1)      jerkier: mean squared third difference of the path
        + w_regress  * R_k                            regressions in the stage (grasp lost, released)
        + incomplete                                  if the stage was entered but not completed
      = unreached                                     if the stage was never entered

A stage is completed when a later one was entered; the last one when the operator labelled the episode
a success. Ratios to the reference make stages of different length and speed comparable, and clipping
at 0 gives no reward for being faster than the demonstrations (a cut corner is not a better stage).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from stare_policy.stages.calculator import EpisodeSummary, summarize_with
from stare_policy.stages.segmentation import Segmentation
from stare_policy.stages.spec import TaskStages

REGRESSION_EVENTS = ("grasp_lost", "released")
"""Segmenter events that count as regressions (a drop, a re-grasp)."""


@dataclass(frozen=True)
class RobotCostConfig:
    duration: float = 1.0
    path: float = 1.0
    jerk: float = 0.25
    regression: float = 0.5
    incomplete: float = 1.0
    unreached: float = 10.0


@dataclass(frozen=True)
class StageReference:
    """Median steps, tool-path length (m) and jerk of each stage over reference episodes."""

    steps: tuple[float, ...]
    path_m: tuple[float, ...]
    jerk: tuple[float, ...]

    @classmethod
    def from_episodes(cls, segmentations: Sequence[Segmentation], tcp_positions: Sequence[np.ndarray],
                      n_stages: int) -> "StageReference":
        """From reference episodes (demonstrations); a stage none of them entered gets NaN (no ratio term)."""
        per_stage: list[list[tuple[float, float, float]]] = [[] for _ in range(n_stages)]
        for seg, xyz in zip(segmentations, tcp_positions):
            for k in range(n_stages):
                steps = np.flatnonzero(seg.labels == k)
                if len(steps):
                    per_stage[k].append((len(steps), path_length(xyz, steps), mean_jerk(xyz, steps)))
        med = [np.median(np.array(v), axis=0) if v else np.full(3, np.nan) for v in per_stage]
        return cls(tuple(float(m[0]) for m in med), tuple(float(m[1]) for m in med), tuple(float(m[2]) for m in med))

    def to_dict(self) -> dict:
        return {"steps": list(self.steps), "path_m": list(self.path_m), "jerk": list(self.jerk)}


def path_length(xyz: np.ndarray, steps: np.ndarray) -> float:
    """Length (m) of the tool path through the given (contiguous or not) steps, in step order."""
    if len(steps) < 2:
        return 0.0
    return float(np.linalg.norm(np.diff(xyz[steps], axis=0), axis=1).sum())


def mean_jerk(xyz: np.ndarray, steps: np.ndarray) -> float:
    """Mean squared third difference of the tool position over the steps (m^2 per step^6)."""
    if len(steps) < 4:
        return 0.0
    return float((np.diff(xyz[steps], n=3, axis=0) ** 2).sum(axis=1).mean())


def _excess(value: float, reference: float) -> float:
    if not np.isfinite(reference) or reference <= 0:
        return 0.0
    return max(0.0, value / reference - 1.0)


def robot_summary(seg: Segmentation, tcp_xyz: np.ndarray, spec: TaskStages, success: bool | None,
                  reference: StageReference, config: RobotCostConfig = RobotCostConfig()) -> EpisodeSummary:
    """Per-stage entry, completion and cost (module docstring) of one episode recorded on a robot."""
    regressions = np.array([step for step, name in seg.events if name in REGRESSION_EVENTS], dtype=np.int64)

    def stage_cost(k: int, steps: np.ndarray) -> float:
        return (config.duration * _excess(len(steps), reference.steps[k])
                + config.path * _excess(path_length(tcp_xyz, steps), reference.path_m[k])
                + config.jerk * _excess(mean_jerk(tcp_xyz, steps), reference.jerk[k])
                + config.regression * int(np.isin(regressions, steps).sum()))

    return summarize_with(seg, spec, success, stage_cost, config.unreached, config.incomplete)
