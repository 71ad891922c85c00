"""Stage calculator: per-stage costs l_k (StA-TPO), stage-offset potentials Phi (StA-PPO shaping) and the
per-stage completion summary of an episode (evaluation: how far each episode got).

Potentials are offset by the stage index, Phi(s) = k + phi_k(s) with phi_k in [0, 1], so that entering the
next stage never lowers the potential and progress rises monotonically across the task; the stage id is
part of the state, which keeps r' = r + gamma * Phi(s') - Phi(s) policy-invariant.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from stare_policy.stages.measures import Measures
from stare_policy.stages.segmentation import Segmentation
from stare_policy.stages.spec import StageThresholds, TaskStages


@dataclass(frozen=True)
class CostConfig:
    """How stage costs treat stages an episode did not finish."""

    unreached: float = 10.0
    """Cost of a stage the episode never entered (method notes: a fixed large cost)."""
    incomplete: float = 1.0
    """Added to a stage that was entered but never left (for the last stage: the episode failed)."""


Cost = Callable[[Measures, np.ndarray, StageThresholds], float]

COSTS: dict[str, Cost] = {
    "reach": lambda m, i, th: float(m.reach[i].mean()),
    "grasp": lambda m, i, th: float(1.0 - m.grasped[i].mean()),
    "hold": lambda m, i, th: float(1.0 - m.grasped[i].mean()),
    "transport": lambda m, i, th: float(m.target[i].mean()),
    "place": lambda m, i, th: float(m.target[i[-1]]),
    "upright": lambda m, i, th: float(m.tilt[i[-1]] + m.height_error[i[-1]] / th.distance_scale_m),
}
"""Stage cost l_k >= 0 by name (`Stage.cost`), over the stage's steps i: Reach is the mean TCP distance
to the grasp point (the paper's form); Grasp/Hold the fraction of steps without a grasp; Transport the
mean object-target distance; Place the final one; Upright the final tilt (rad) plus scaled height error."""


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


Potential = Callable[[Measures, StageThresholds], np.ndarray]

POTENTIALS: dict[str, Potential] = {
    "reach": lambda m, th: _sigmoid(1.0 - m.reach / th.distance_scale_m) / _sigmoid(1.0),
    "grasp": lambda m, th: m.grasped * (0.5 + 0.5 * np.clip(m.lift / th.carry_m, 0.0, 1.0)),
    "target": lambda m, th: 1.0 - np.tanh(m.target / th.distance_scale_m),
    "lift": lambda m, th: m.grasped * (0.5 * np.clip(m.lift / th.raise_m, 0.0, 1.0) + 0.5 * (1.0 - m.tilt / (np.pi / 2))),
    "upright": lambda m, th: 0.5 * (1.0 - m.tilt / (np.pi / 2)) + 0.5 * (1.0 - np.tanh(m.height_error / th.distance_scale_m)),
}
"""Intra-stage progress phi_k in [0, 1] by name (`Stage.potential`). Reach uses the paper's
sigmoid(1 - d/L), scaled to reach 1 at d = 0."""


def potential(stage: np.ndarray, m: Measures, spec: TaskStages) -> np.ndarray:
    """Phi = k + phi_k for each row (env or step) in stage k."""
    stage = np.asarray(stage)
    phis = np.stack([np.clip(POTENTIALS[s.potential](m, spec.thresholds), 0.0, 1.0) for s in spec.stages])
    return stage + np.take_along_axis(phis, stage[None, :], axis=0)[0]


def shaping(phi: np.ndarray, phi_next: np.ndarray, gamma: float) -> np.ndarray:
    """The potential-based shaping term gamma * Phi(s') - Phi(s)."""
    return gamma * np.asarray(phi_next) - np.asarray(phi)


@dataclass
class StageSummary:
    name: str
    entered: bool
    completed: bool
    start: int | None
    steps: int
    cost: float


@dataclass
class EpisodeSummary:
    stages: list[StageSummary]
    furthest: str
    """Name of the last stage reached ("" if none)."""
    completed: int
    """Number of stages completed in order (K when the episode succeeded)."""

    @property
    def costs(self) -> np.ndarray:
        return np.array([s.cost for s in self.stages])

    def to_dict(self) -> dict:
        return asdict(self)


StageCost = Callable[[int, np.ndarray], float]
"""l_k of stage k over its steps (indices into the episode), before the incomplete penalty."""


def summarize_with(seg: Segmentation, spec: TaskStages, success: bool | None, stage_cost: StageCost,
                   unreached: float, incomplete: float) -> EpisodeSummary:
    """Per-stage entry, completion, length and cost of one labelled episode, whatever measures the cost
    (privileged in simulation, `robot_costs` on a robot). A stage is completed when a later stage was
    entered; the last one when the episode succeeded (`success`; None: not known, so not completed)."""
    furthest = seg.furthest
    stages = []
    for k, stage in enumerate(spec.stages):
        steps = np.flatnonzero(seg.labels == k)
        entered = len(steps) > 0
        completed = furthest > k or (k == len(spec) - 1 and entered and bool(success))
        cost = float(stage_cost(k, steps)) + (0.0 if completed else incomplete) if entered else unreached
        start = int(steps[0]) if entered else None
        stages.append(StageSummary(stage.name, entered, completed, start, len(steps), cost))
    done = next((k for k, s in enumerate(stages) if not s.completed), len(stages))
    return EpisodeSummary(stages, spec.names[furthest] if furthest >= 0 else "", done)


def summarize(seg: Segmentation, m: Measures, spec: TaskStages, success: bool | None = None,
              config: CostConfig = CostConfig()) -> EpisodeSummary:
    """`summarize_with` the privileged stage costs (`COSTS`)."""
    return summarize_with(seg, spec, success, lambda k, steps: COSTS[spec.stages[k].cost](m, steps, spec.thresholds),
                          config.unreached, config.incomplete)
