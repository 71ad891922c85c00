"""Stage labels from simulator state: the ground truth for the proprioceptive separator, and the stage
machine behind stage costs and shaped rewards in simulation.

An entry event is a test on the current `Measures` and on where the object was when the current stage
began (its anchor), so one step of the stage machine is the same vectorised code whether its rows are
the envs of a simulation (online) or one step of an episode (offline). Labels are monotone by default;
an object that falls back to the table after being picked up is reported as a "dropped" regression event
(and, with `monotone=False`, the episode restarts at Reach).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from stare_policy.stages.measures import Measures, compute_measures
from stare_policy.stages.segmentation import Segmentation
from stare_policy.stages.spec import StageThresholds, TaskStages

Event = Callable[[Measures, StageThresholds, np.ndarray], np.ndarray]

EVENTS: dict[str, Event] = {
    "start": lambda m, th, anchor: np.ones(len(m), bool),
    "grasped": lambda m, th, anchor: m.grasped & (m.gripper < th.close_command),
    "at_contact": lambda m, th, anchor: m.reach <= th.reach_m,
    "moved_in_hand": lambda m, th, anchor: m.grasped & (np.linalg.norm(m.obj - anchor, axis=-1) >= th.carry_m),
    "upright": lambda m, th, anchor: m.tilt <= th.upright_rad,
    "near_target": lambda m, th, anchor: m.target <= th.target_m,
}
"""Privileged entry events by name, as used in `Stage.entry`; `anchor` (N, 3) is the object's position
when the current stage began."""


def holding_from(spec: TaskStages) -> int:
    """First stage that requires the object in hand (len(spec) if none)."""
    return next((k for k, s in enumerate(spec.stages) if s.entry == "moved_in_hand"), len(spec))


def advance(stage: np.ndarray, anchor: np.ndarray, m: Measures, spec: TaskStages,
            monotone: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One step of the stage machine for a batch of rows: enter stage k from k-1 when its event holds
    (one stage per step, like the proprioceptive separator). Returns stages, anchors, regressed rows."""
    th, rows = spec.thresholds, np.arange(len(stage))
    dropped = ~m.grasped & (m.lift < 0.5 * th.carry_m) & ~(m.target <= th.target_m)
    regressed = (stage >= holding_from(spec)) & dropped
    stage = np.where(regressed & (not monotone), 0, stage)
    events = np.stack([EVENTS[s.entry](m, th, anchor) for s in spec.stages], axis=1)
    enter = (stage + 1 < len(spec)) & events[rows, np.minimum(stage + 1, len(spec) - 1)]
    anchor = np.where((enter | regressed)[:, None], m.obj, anchor)
    return np.where(enter, stage + 1, stage), anchor, regressed


def segment_privileged(state: dict, spec: TaskStages, monotone: bool = True) -> tuple[Segmentation, Measures]:
    """Label every step of one episode from its privileged arrays (dataset names, leading dim T)."""
    m = compute_measures(state, spec)
    labels = np.zeros(len(m), np.int64)
    stage, anchor, log, was = np.zeros(1, np.int64), m.obj[:1], [], False
    for t in range(1, len(m)):  # the first step only starts the episode, as `PrivilegedSeparator.reset`
        stage, anchor, regressed = advance(stage, anchor, m.rows(slice(t, t + 1)), spec, monotone)
        labels[t] = stage[0]
        if regressed[0] and not was:
            log.append((t, "dropped"))
        was = bool(regressed[0])
    return Segmentation(spec.names, labels, log), m


class PrivilegedSeparator:
    """Online labelling of a batch of simulated envs, one call per control step."""

    def __init__(self, spec: TaskStages, num_envs: int = 1, monotone: bool = True):
        self.spec, self.monotone = spec, monotone
        self.stage = np.zeros(num_envs, np.int64)
        self.object_start = np.zeros((num_envs, 3))
        self.anchor = np.zeros((num_envs, 3))

    def reset(self, state: dict, env_idx: np.ndarray | None = None) -> np.ndarray:
        """Start new episodes (all envs, or those in `env_idx`) from their first state."""
        idx = slice(None) if env_idx is None else np.asarray(env_idx)
        start = np.asarray(state[f"priv.{self.spec.object}_pose"])[idx, :3]
        self.object_start[idx] = self.anchor[idx] = start
        self.stage[idx] = 0
        return self.stage.copy()

    def step(self, state: dict) -> tuple[np.ndarray, Measures, np.ndarray]:
        """Stages after a step (state read after it, with the action that led there), the measures, and
        which envs regressed."""
        m = compute_measures(state, self.spec, self.object_start)
        self.stage, self.anchor, regressed = advance(self.stage, self.anchor, m, self.spec, self.monotone)
        return self.stage.copy(), m, regressed
