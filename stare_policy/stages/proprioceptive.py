"""Stage labels from what a real robot has: joint positions (7 arm + 2 finger joints), the commanded
gripper action and time. The end-effector pose comes from forward kinematics of the robot's URDF.

Events: the gripper is commanded closed (Grasp); closed fingers stall above zero opening (something is
held) while the TCP has risen above where the grasp closed (Transport, Lift); after a carry, the TCP
slows to a stop (Settle, Place, and the end of a push approach). `ProprioSegmenter` runs online, O(1)
per sample with no look-ahead; `proprio_batch.segment_proprio_batch` gives identical labels for whole
episodes at once. Both share the event definitions below, written with numpy's operator names so that
they evaluate on floats and on arrays alike.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from stare_policy.stages.kinematics import ChainFK
from stare_policy.stages.segmentation import UNKNOWN
from stare_policy.stages.spec import StageThresholds, TaskStages

N_ARM, N_FINGERS = 7, 2
UNKNOWN_NAME = "unknown"


class FloatOps:
    """The few numpy functions the event definitions use, for Python floats (the online path)."""

    sqrt = staticmethod(math.sqrt)
    abs = staticmethod(abs)


@dataclass
class Sample:
    """One sample's features (floats online, arrays over time in batch)."""

    x: object
    y: object
    z: object
    width: object
    """Finger opening, both fingers together."""
    prev_width: object
    """Finger opening at the previous sample."""
    command: object
    speed: object
    """TCP speed over the last `speed_window` samples (m/s)."""


@dataclass
class Reference:
    """What the current stage remembers from its start."""

    x: object
    y: object
    z: object
    grasp_z: object
    """TCP height when the gripper closed."""
    peak: object
    """Peak TCP speed since the stage began, before the current sample."""


def held(f: Sample, th: StageThresholds, ops=FloatOps):
    """Closed fingers stopped by an object."""
    return (f.command < th.close_command) & (f.width > th.hold_width_m) & (ops.abs(f.width - f.prev_width) < th.stall_m)


def travel(f: Sample, r: Reference, th: StageThresholds, ops=FloatOps):
    planar = (f.x - r.x) ** 2 + (f.y - r.y) ** 2
    return ops.sqrt(planar if th.travel_in_plane else planar + (f.z - r.z) ** 2)


EVENTS = {
    "gripper_closed": lambda f, r, th, ops: f.command < th.close_command,
    "held_lifted": lambda f, r, th, ops: held(f, th, ops) & (f.z - r.grasp_z >= th.lift_m),
    "held_raised": lambda f, r, th, ops: held(f, th, ops) & (f.z - r.grasp_z >= th.raise_m),
    "slowed": lambda f, r, th, ops: (travel(f, r, th, ops) >= th.min_travel_m) & (f.speed < th.slow_ratio * r.peak),
}
"""Proprioceptive entry events by name, as used in `Stage.proprio_entry` (first stage: "start")."""


def grasp_stage(spec: TaskStages) -> int:
    """Stage whose start fixes the grasp height (-1 if the task never closes the gripper on purpose)."""
    return next((k for k, s in enumerate(spec.stages) if s.proprio_entry == "gripper_closed"), -1)


def holding_from(spec: TaskStages) -> int:
    """First stage during which the object is in hand (len(spec) if none)."""
    return next((k for k, s in enumerate(spec.stages) if s.proprio_entry.startswith("held_")), len(spec))


def check_spec(spec: TaskStages) -> None:
    unknown = [s.proprio_entry for s in spec.stages[1:] if s.proprio_entry not in EVENTS]
    if unknown:
        raise ValueError(f"{spec.env_id}: unknown proprioceptive events {unknown}; known: {', '.join(EVENTS)}")


class ProprioSegmenter:
    """Online stage labelling of one episode from joint states; never raises on bad samples: it labels
    them "unknown", records why in `last_error`, and carries on from its last good state.

    Always monotone: without a view of the object a restart would be guesswork, so a lost grasp (closed
    fingers at zero opening while holding) and a release are reported as events instead."""

    def __init__(self, spec: TaskStages, fk: ChainFK | None = None, *, rate_hz: float = 20.0):
        check_spec(spec)
        self.spec, self.rate_hz = spec, rate_hz
        self.fk = fk or ChainFK()
        self._th, self._events = spec.thresholds, [EVENTS.get(s.proprio_entry) for s in spec.stages]
        self._grasp, self._holding = grasp_stage(spec), holding_from(spec)
        self.reset()

    def reset(self) -> None:
        self.stage, self.samples = UNKNOWN, 0
        self.events: list[tuple[int, str]] = []
        self.last_error = ""
        self._ref: Reference | None = None
        self._hist: deque = deque(maxlen=max(1, self._th.speed_window))
        self._width = 0.0
        self._lost = self._was_closed = False

    @property
    def stage_name(self) -> str:
        return self.spec.names[self.stage] if self.stage >= 0 else UNKNOWN_NAME

    def _parse(self, qpos, gripper, t) -> tuple[list[float], float, float] | None:
        try:
            q = [float(v) for v in qpos]
            command = float(gripper)
            now = float(t) if t is not None else self.samples / self.rate_hz
        except (TypeError, ValueError) as err:
            self.last_error = f"unreadable sample: {err}"
            return None
        if len(q) != N_ARM + N_FINGERS:
            self.last_error = f"expected {N_ARM} arm + {N_FINGERS} finger joint positions, got {len(q)} values"
            return None
        if not all(map(math.isfinite, q)) or not math.isfinite(command) or not math.isfinite(now):
            self.last_error = "non-finite joint position, gripper command or time"
            return None
        return q, command, now

    def step(self, qpos, gripper: float, t: float | None = None) -> int:
        """Label one sample: the stage index, or UNKNOWN (-1) for a sample that cannot be used."""
        index = self.samples
        self.samples += 1
        parsed = self._parse(qpos, gripper, t)
        if parsed is None:
            self.events.append((index, "bad_input"))
            return UNKNOWN
        q, command, now = parsed
        x, y, z = self.fk.pose(q[:N_ARM])[:3]
        width = q[N_ARM] + q[N_ARM + 1]
        th = self._th
        if self._ref is None:  # first usable sample: the episode starts in the first stage
            self._hist.extend([(x, y, z, now)] * self._hist.maxlen)
            self._ref, self._width, self.stage = Reference(x, y, z, z, 0.0), width, 0
            self._was_closed = command < th.close_command
            return 0
        ox, oy, oz, ot = self._hist[0]
        self._hist.append((x, y, z, now))
        speed = math.sqrt((x - ox) ** 2 + (y - oy) ** 2 + (z - oz) ** 2) / max(now - ot, 1e-9)
        f = Sample(x, y, z, width, self._width, command, speed)
        ref, stage = self._ref, self.stage
        nxt = stage + 1
        if nxt < len(self._events) and self._events[nxt](f, ref, th, FloatOps):
            stage = nxt
            self._ref = Reference(x, y, z, z if stage == self._grasp else ref.grasp_z, 0.0)
        else:
            ref.peak = max(ref.peak, speed)
        closed = command < th.close_command
        lost = stage >= self._holding and closed and width < th.hold_width_m
        if lost and not self._lost:
            self.events.append((index, "grasp_lost"))
        if stage >= self._holding and self._was_closed and not closed:
            self.events.append((index, "released"))
        self.stage, self._width, self._was_closed, self._lost = stage, width, closed, lost
        return stage
