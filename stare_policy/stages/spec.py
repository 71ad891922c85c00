"""How a task splits into stages, declared as data: read by both stage separators, the stage calculator,
the shaped-reward wrapper and the ROS segmenter, so a task's stages are defined in exactly one place."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field


@dataclass(frozen=True)
class StageThresholds:
    """The numbers behind the stage events. Defaults were tuned on motion-planner demos of the ManiSkill3
    tasks and noisy replays of them (benchmarks/stage_thresholds.py; docs/stages.md, "Tuning").
    Lengths in metres, speeds in m/s, angles in radians."""

    close_command: float = 0.0
    """Gripper commands below this mean "close" (+1 open, -1 closed)."""
    reach_m: float = 0.03
    """Push/pull tasks: Reach ends when the TCP is within this distance of the contact point behind
    (or in front of) the object. (Grasping tasks end Reach when the fingers close on the object.)"""
    carry_m: float = 0.01
    """Grasp ends when the held object (privileged) or the TCP (proprioceptive) has moved this far from
    where the grasp closed: up for most goals, sideways for PickCube goals at table height."""
    hold_width_m: float = 0.01
    """Finger opening (both fingers together) above which closed fingers are taken to be stopped by an
    object; below it they closed on nothing."""
    open_width_m: float = 0.075
    """Fingers opened wider than this hold nothing, stalled or not (the Panda opens to 0.08 m)."""
    stall_mps: float = 0.1
    """Closing fingers whose opening changes slower than this (m/s) have stalled. The simulated Panda
    closes at ~0.8 m/s; a real Franka hand closes at <= 0.1 m/s, so lower this for one."""
    target_m: float = 0.025
    """Transport ends when the object is within this distance of the target point (PickCube's own
    success radius)."""
    slow_ratio: float = 0.5
    """Proprioceptive stand-in for "near the target": after the carry, the TCP has slowed below this
    fraction of its peak speed of the stage (motions end in a deceleration onto the target)."""
    min_travel_m: float = 0.03
    """A carry or push must have moved the TCP this far from where the stage began before a slowdown
    counts as arriving."""
    travel_in_plane: bool = False
    """Measure that travel in the table plane only, so a vertical lift does not count as a carry
    (StackCube lifts straight up, pauses, then carries)."""
    speed_window: int = 2
    """Samples over which the TCP speed is measured (online: a ring buffer, O(1) per sample)."""
    raise_m: float = 0.1
    """Height gain over which the Lift potential rises from 0 to 1."""
    upright_rad: float = 0.35
    """Privileged: Upright (align and set down) begins once the object's long axis is within this angle
    of vertical."""
    rotate_rad: float = 0.25
    """Proprioceptive stand-in: the wrist holding the object has turned this far since the stage began
    (the expert turns the wrist to swing the peg upright)."""
    distance_scale_m: float = 0.1
    """Length scale L of the distance potentials (phi = sigmoid(1 - d/L), 1 - tanh(d/L))."""


@dataclass(frozen=True)
class Stage:
    """One stage: the events that start it, and how its execution is scored."""

    name: str
    entry: str
    """Privileged event that starts the stage (`privileged.EVENTS`); "start" for the first stage."""
    proprio_entry: str
    """Proprioceptive event that starts it (`proprioceptive.EVENTS`)."""
    cost: str
    """Stage cost l_k >= 0, lower is better (`calculator.COSTS`)."""
    potential: str
    """Intra-stage progress phi_k in [0, 1] for reward shaping (`calculator.POTENTIALS`)."""
    observable: bool = True
    """False where joint positions and the gripper command cannot tell when this stage begins (no
    gripper event, no characteristic arm motion): the proprioceptive entry is then a heuristic that
    holds for the expert's motion pattern only (docs/stages.md, "What proprioception cannot see")."""


@dataclass(frozen=True)
class TaskStages:
    """The ordered stages of one task and the scene quantities they are measured against."""

    env_id: str
    stages: tuple[Stage, ...]
    object: str
    """Actor the stages are about; its pose is `priv.<object>_pose` in the dataset."""
    target: str | None = None
    """Actor whose position (plus `target_offset`) is where the object must go; None if the goal is an
    orientation (LiftPegUpright)."""
    target_offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """World-frame offset from the target actor to the target point (StackCube: one cube height up)."""
    target_xy: bool = False
    """Measure the distance to the target in the table plane only (push/pull goal regions)."""
    contact_offset: tuple[float, float, float] = (0.0, 0.0, 0.0)
    """World-frame offset from the object to where the TCP should go (behind the cube for a push)."""
    grasp_span_m: float = 0.0
    """Half-length of the graspable segment along the object's local x axis (0: its centre)."""
    upright_height_m: float | None = None
    """Height of the object's centre when it stands upright (orientation goals)."""
    robot: str = "panda"
    """Arm whose joint positions the proprioceptive separator reads (its URDF gives the kinematics)."""
    thresholds: StageThresholds = field(default_factory=StageThresholds)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(stage.name for stage in self.stages)

    def __len__(self) -> int:
        return len(self.stages)

    def index(self, name: str) -> int:
        return self.names.index(name)

    def with_thresholds(self, **changes) -> "TaskStages":
        """A copy with some thresholds changed (for tuning and tests)."""
        return dataclasses.replace(self, thresholds=dataclasses.replace(self.thresholds, **changes))
