"""What a bag reader needs to know beyond the bag: topic names (the ROS graph's), their message types (the
episode_logger's defaults), and the robot geometry that turns joint states into the policy's TCP pose."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from stare_ros.config import DEFAULT_RECORDED, PANDA_ARM_JOINTS, PANDA_FINGER_JOINTS, PolicyServerConfig, Topics

_DEFAULTS = PolicyServerConfig()
_RECORDED = dict(entry.split(":", 1) for entry in DEFAULT_RECORDED)

MESSAGE_TYPES: dict[str, str] = {
    f.name: _RECORDED[getattr(Topics(), f.name)] for f in fields(Topics) if getattr(Topics(), f.name) in _RECORDED
}
"""`Topics` field -> message type, as the episode_logger records them (`stare_ros.config.DEFAULT_RECORDED`)."""

ROBOT_JOINTS: dict[str, tuple[str, ...]] = {
    "panda": (*PANDA_ARM_JOINTS, *PANDA_FINGER_JOINTS),
    "panda_wristcam": (*PANDA_ARM_JOINTS, *PANDA_FINGER_JOINTS),
}
"""`TaskSpec.robot` -> the joints of the dataset's `qpos`, in order (the policy_server reads the same names)."""


@dataclass(frozen=True)
class BagReaderConfig:
    """How bags are read into episodes."""

    topics: Topics = field(default_factory=Topics)
    """Topic names; the message type of each is fixed (`MESSAGE_TYPES`)."""
    task: str = ""
    """Task (env id) of bags whose metadata and episode events name none (bags not written by the
    episode_logger); empty: such a bag is an error."""
    base_pose: tuple[float, ...] = _DEFAULTS.base_pose
    """Robot base in the policy's world frame (x y z qw qx qy qz): `tcp_pose` is forward kinematics of the
    arm joints moved there, as the policy_server computes it."""
    pos_scale_m: float = _DEFAULTS.pos_scale_m
    """Twist -> normalised action, for bags whose commands are twists only (no PolicyAction)."""
    rot_scale_rad: float = _DEFAULTS.rot_scale_rad
    control_rate_hz: float = 0.0
    """Rate that converts twists back to per-step actions; 0: the task's control frequency."""
    joint_tolerance_s: float = 0.02
    """A joint state pairs with an image of another stamp (separate drivers on a robot) when the stamps
    differ by at most this; in simulation both carry the same stamp."""
