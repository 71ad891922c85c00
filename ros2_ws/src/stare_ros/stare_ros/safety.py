"""The safety layer between the policy and the robot, without ROS: clipping, per-step translation and
rotation limits, the workspace box, dry_run, stale inputs and a latching e-stop. Everything that is not
a clean, fresh policy action becomes a hold: zero arm motion, gripper left where it was."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from stare_ros.config import SafetyConfig

GRIPPER = 6
OPEN = 1.0


@dataclass
class Command:
    action: np.ndarray
    """(7,) float32, normalised pd_ee_delta_pose (translation, rotation, gripper)."""
    held: bool
    """Zero arm motion because of e-stop, stale or bad input, dry_run or no policy."""
    reasons: list[str] = field(default_factory=list)
    """Why the command differs from the policy's action (empty: it does not)."""

    @property
    def reason(self) -> str:
        return ", ".join(self.reasons)


class SafetyLayer:
    def __init__(self, config: SafetyConfig):
        self.config = config
        self.estopped = False
        self.gripper = min(OPEN, config.action_limit)
        """The last gripper command sent; a hold keeps it (opening on a stale image would drop the object).
        Before the first: open, within action_limit like every command."""

    def engage_estop(self) -> None:
        self.estopped = True

    def release_estop(self) -> None:
        self.estopped = False

    def hold(self, *reasons: str) -> Command:
        action = np.zeros(7, np.float32)
        action[GRIPPER] = self.gripper
        return Command(action, True, list(reasons))

    def filter(self, raw: np.ndarray, tcp_position: np.ndarray | None) -> Command:
        """The command for a policy action; `tcp_position` (base frame, metres) enables the workspace box."""
        cfg = self.config
        if self.estopped:
            return self.hold("e-stop")
        raw = np.asarray(raw, np.float64).reshape(-1)
        if raw.shape != (7,) or not np.all(np.isfinite(raw)):
            return self.hold("policy action is not 7 finite values")
        reasons = []
        action = np.clip(raw, -cfg.action_limit, cfg.action_limit)
        if not np.array_equal(action, raw):
            reasons.append("clipped")
        translation = action[:3] * cfg.pos_scale_m
        rotation = action[3:6] * cfg.rot_scale_rad
        length, angle = float(np.linalg.norm(translation)), float(np.linalg.norm(rotation))
        if length > cfg.max_step_translation_m:
            translation *= cfg.max_step_translation_m / length
            reasons.append("translation limited")
        if angle > cfg.max_step_rotation_rad:
            rotation *= cfg.max_step_rotation_rad / angle
            reasons.append("rotation limited")
        if tcp_position is not None:
            tcp = np.asarray(tcp_position, np.float64)
            inside = np.clip(tcp + translation, cfg.workspace_min, cfg.workspace_max) - tcp
            # From outside the box the clamp points back towards it: pass motion that goes that way, never
            # more of it than was asked, and nothing that goes further out.
            boxed = np.where(np.sign(inside) == np.sign(translation),
                             np.sign(translation) * np.minimum(np.abs(inside), np.abs(translation)), 0.0)
            if not np.allclose(boxed, translation, rtol=0, atol=1e-12):
                translation = boxed
                reasons.append("workspace")
        action[:3] = translation / cfg.pos_scale_m
        action[3:6] = rotation / cfg.rot_scale_rad
        if cfg.dry_run:
            return self.hold("dry_run", *reasons)
        self.gripper = float(action[GRIPPER])
        return Command(action.astype(np.float32), False, reasons)
