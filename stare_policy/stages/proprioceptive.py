"""Stage labels from what a real robot has: joint positions (7 arm + 2 finger joints), the commanded
gripper action and time. The end-effector pose comes from forward kinematics of the robot's URDF.

Events: closed fingers stall above zero opening, i.e. something is held (Grasp); still held, the TCP has
moved away from where the grasp closed (Transport, Lift); the holding wrist turns (Upright); after a
carry the TCP slows to a stop (Settle, Place, and the end of a push approach). `ProprioSegmenter` runs
online, O(1) per sample with no look-ahead; `proprio_batch.segment_proprio_batch` gives the same labels
for whole episodes at once. Both share the event definitions below, written with numpy's operator names so that
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
    width_rate: object
    """Change of the finger opening since the previous sample (m/s)."""
    command: object
    speed: object
    """TCP speed over the last `speed_window` samples (m/s)."""
    rot: tuple
    """TCP orientation, the 9 entries of its rotation matrix (row-major)."""


@dataclass
class Reference:
    """What the current stage remembers from its start."""

    x: object
    y: object
    z: object
    peak: object
    """Peak TCP speed since the stage began, before the current sample."""
    rot: tuple
    """TCP orientation when the stage began."""


def held(f: Sample, th: StageThresholds, ops=FloatOps):
    """Closed fingers stopped by an object."""
    opening = (f.width > th.hold_width_m) & (f.width < th.open_width_m)
    return (f.command < th.close_command) & opening & (ops.abs(f.width_rate) < th.stall_mps)


def moved(f: Sample, r: Reference, ops=FloatOps):
    return ops.sqrt((f.x - r.x) ** 2 + (f.y - r.y) ** 2 + (f.z - r.z) ** 2)


def travel(f: Sample, r: Reference, th: StageThresholds, ops=FloatOps):
    planar = (f.x - r.x) ** 2 + (f.y - r.y) ** 2
    return ops.sqrt(planar if th.travel_in_plane else planar + (f.z - r.z) ** 2)


def turned(f: Sample, r: Reference):
    """trace(R_ref^T R) = 1 + 2 cos(angle turned since the stage began)."""
    return sum(a * b for a, b in zip(f.rot, r.rot))


EVENTS = {
    "held": lambda f, r, th, ops: held(f, th, ops),
    "held_moved": lambda f, r, th, ops: held(f, th, ops) & (moved(f, r, ops) >= th.carry_m),
    "held_rotated": lambda f, r, th, ops: held(f, th, ops) & (turned(f, r) <= 1 + 2 * math.cos(th.rotate_rad)),
    "slowed": lambda f, r, th, ops: (travel(f, r, th, ops) >= th.min_travel_m) & (f.speed < th.slow_ratio * r.peak),
}
"""Proprioceptive entry events by name, as used in `Stage.proprio_entry` (first stage: "start")."""

READS_PEAK = {"slowed"}
"""Events that read the stage's peak speed (batch labelling computes it only for them)."""
READS_ROTATION = {"held_rotated"}
"""Events that read the TCP orientation (batch labelling gathers it only for them)."""


def holding_from(spec: TaskStages) -> int:
    """First stage during which the object is in hand (len(spec) if none)."""
    return next((k for k, s in enumerate(spec.stages) if s.proprio_entry.startswith("held")), len(spec))


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
        self._holding = holding_from(spec)
        self.reset()

    def reset(self) -> None:
        self.label, self.samples = UNKNOWN, 0
        """The label of the latest sample (UNKNOWN before the first usable one and for unusable ones)."""
        self._stage = UNKNOWN
        self.events: list[tuple[int, str]] = []
        self.last_error = ""
        self._ref: Reference | None = None
        self._hist: deque = deque(maxlen=max(1, self._th.speed_window))
        self._width = 0.0
        self._lost = self._was_closed = False

    @property
    def stage(self) -> int:
        """The stage of the last usable sample (UNKNOWN before the first): where a bad sample leaves off."""
        return self._stage

    @property
    def stage_name(self) -> str:
        return self.spec.names[self.label] if self.label >= 0 else UNKNOWN_NAME

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
            self.label = UNKNOWN
        else:
            self.label = self._update(index, *parsed)
        return self.label

    def _update(self, index: int, q: list[float], command: float, now: float) -> int:
        pose = self.fk.pose(q[:N_ARM])
        x, y, z, rot = pose[0], pose[1], pose[2], pose[3:]
        width = q[N_ARM] + q[N_ARM + 1]
        th = self._th
        if self._ref is None:  # first usable sample: the episode starts in the first stage
            self._hist.extend([(x, y, z, now)] * self._hist.maxlen)
            self._ref, self._width, self._stage = Reference(x, y, z, 0.0, rot), width, 0
            self._was_closed = command < th.close_command
            return 0
        ox, oy, oz, ot = self._hist[0]
        width_rate = (width - self._width) / max(now - self._hist[-1][3], 1e-9)
        self._hist.append((x, y, z, now))
        speed = math.sqrt((x - ox) ** 2 + (y - oy) ** 2 + (z - oz) ** 2) / max(now - ot, 1e-9)
        f = Sample(x, y, z, width, width_rate, command, speed, rot)
        ref, stage = self._ref, self._stage
        nxt = stage + 1
        if nxt < len(self._events) and self._events[nxt](f, ref, th, FloatOps):
            stage = nxt
            self._ref = Reference(x, y, z, 0.0, rot)
        else:
            ref.peak = max(ref.peak, speed)
        closed = command < th.close_command
        lost = stage >= self._holding and closed and width < th.hold_width_m
        if lost and not self._lost:
            self.events.append((index, "grasp_lost"))
        if stage >= self._holding and self._was_closed and not closed:
            self.events.append((index, "released"))
        self._stage, self._width, self._was_closed, self._lost = stage, width, closed, lost
        return stage
