"""Stage labels from simulator state: the ground truth for the proprioceptive separator, and the stage
machine behind stage costs and shaped rewards in simulation.

Every entry event is a memoryless test on the current `Measures`, so one step of the stage machine is
the same vectorised code whether its batch is the envs of a simulation (online) or one step of an
episode (offline). Labels are monotone by default; an object that falls back to the table after being
lifted is reported as a "dropped" regression event (and, with `monotone=False`, restarts at Reach).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from stare_policy.stages.measures import Measures, compute_measures
from stare_policy.stages.segmentation import Segmentation
from stare_policy.stages.spec import StageThresholds, TaskStages

Event = Callable[[Measures, StageThresholds], np.ndarray]

EVENTS: dict[str, Event] = {
    "start": lambda m, th: np.ones(len(m), bool),
    "closed_near": lambda m, th: (m.gripper < th.close_command) & (m.reach <= th.reach_m),
    "at_contact": lambda m, th: m.reach <= th.reach_m,
    "lifted": lambda m, th: m.grasped & (m.lift >= th.lift_m),
    "raised": lambda m, th: m.grasped & (m.lift >= th.raise_m),
    "near_target": lambda m, th: m.target <= th.target_m,
}
"""Privileged entry events by name, as used in `Stage.entry`."""


def _holding_from(spec: TaskStages) -> int:
    """First stage that requires the object in hand (len(spec) if none)."""
    kinds = [stage.entry for stage in spec.stages]
    return next((k for k, kind in enumerate(kinds) if kind in ("lifted", "raised")), len(spec))


def entry_events(m: Measures, spec: TaskStages) -> tuple[np.ndarray, np.ndarray]:
    """(N, K) entry condition of each stage, and (N,) "the object is back down without being held"."""
    th = spec.thresholds
    events = np.stack([EVENTS[stage.entry](m, th) for stage in spec.stages], axis=1)
    dropped = ~m.grasped & (m.lift < 0.5 * th.lift_m) & ~(m.target <= th.target_m)
    return events, dropped


def advance(stage: np.ndarray, events: np.ndarray, dropped: np.ndarray, holding_from: int,
            monotone: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """One step of the stage machine for a batch: enter stage k when in k-1 and its event holds
    (several stages may pass in one step). Returns the new stages and which rows regressed."""
    regressed = (stage >= holding_from) & dropped
    stage = np.where(regressed & ~monotone, 0, stage)
    for k in range(1, events.shape[1]):
        stage = np.where((stage == k - 1) & events[:, k], k, stage)
    return stage, regressed


def segment_privileged(state: dict, spec: TaskStages, monotone: bool = True) -> tuple[Segmentation, Measures]:
    """Label every step of one episode from its privileged arrays (dataset names, leading dim T)."""
    m = compute_measures(state, spec)
    events, dropped = entry_events(m, spec)
    holding = _holding_from(spec)
    labels = np.empty(len(m), np.int64)
    stage, log = np.zeros(1, np.int64), []
    for t in range(len(m)):
        stage, regressed = advance(stage, events[t:t + 1], dropped[t:t + 1], holding, monotone)
        labels[t] = stage[0]
        if regressed[0] and not (log and log[-1][1] == "dropped" and log[-1][0] == t - 1):
            log.append((t, "dropped"))
    return Segmentation(spec.names, labels, log), m


class PrivilegedSeparator:
    """Online labelling of a batch of simulated envs, one call per control step."""

    def __init__(self, spec: TaskStages, num_envs: int = 1, monotone: bool = True):
        self.spec, self.monotone = spec, monotone
        self.stage = np.zeros(num_envs, np.int64)
        self.object_start = np.zeros((num_envs, 3))
        self._holding = _holding_from(spec)

    def reset(self, state: dict, env_idx: np.ndarray | None = None) -> np.ndarray:
        """Start new episodes (all envs, or those in `env_idx`) from their first state."""
        idx = slice(None) if env_idx is None else np.asarray(env_idx)
        self.object_start[idx] = np.asarray(state[f"priv.{self.spec.object}_pose"])[idx, :3]
        self.stage[idx] = 0
        return self.stage.copy()

    def step(self, state: dict) -> tuple[np.ndarray, Measures, np.ndarray]:
        """Stages after a step (state read after it, with the action that led there), the measures, and
        which envs regressed."""
        m = compute_measures(state, self.spec, self.object_start)
        events, dropped = entry_events(m, self.spec)
        self.stage, regressed = advance(self.stage, events, dropped, self._holding, self.monotone)
        return self.stage.copy(), m, regressed
