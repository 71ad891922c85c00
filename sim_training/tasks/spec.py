"""The declarative description of one simulated task, read by data collection, training, evaluation and
deployment alike (a checkpoint stores the spec it was trained for)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from stare_policy.stages.spec import TaskStages
from stare_policy.stages.tasks import STAGE_SPECS


@dataclass(frozen=True)
class CameraSpec:
    """The single camera the policy sees."""

    name: str = "base_camera"
    """Sensor uid in the ManiSkill3 scene."""
    width: int = 128
    height: int = 128
    eye: tuple[float, float, float] | None = None
    """Camera position in the world frame (m); None keeps the env's own pose (then `target` is ignored)."""
    target: tuple[float, float, float] | None = None
    """The point the camera looks at."""
    fov: float | None = None
    """Vertical field of view (rad); None keeps the env's."""

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "CameraSpec":
        """From JSON (a dataset's or checkpoint's record), where tuples come back as lists."""
        data = dict(data)
        for key in ("eye", "target"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return cls(**data)

    def sensor_config(self) -> dict[str, Any]:
        """The ManiSkill3 `sensor_configs` entry that realises this camera."""
        config: dict[str, Any] = dict(width=self.width, height=self.height)
        if self.eye is not None:
            from mani_skill.utils import sapien_utils

            config["pose"] = sapien_utils.look_at(list(self.eye), list(self.target or (0.0, 0.0, 0.0))).raw_pose[0].tolist()
        if self.fov is not None:
            config["fov"] = self.fov
        return config


@dataclass(frozen=True)
class TaskSpec:
    """Everything STARE needs to know about a task, in one place."""

    env_id: str
    """ManiSkill3 environment id."""
    family: str
    """'maniskill' (Franka tabletop tasks) or 'simpler' (WidowX/Bridge digital twins)."""
    robot: str
    """Robot description; passed as `robot_uids` where the env accepts a choice."""
    instructions: tuple[str, ...]
    """Language instruction paraphrases; the first one is canonical (evaluation, deployment default)."""
    camera: CameraSpec
    max_episode_steps: int
    """Long enough for the expert demonstrations (ManiSkill3's defaults of 50 are not)."""
    success_flags: tuple[str, ...]
    """Boolean flags of the env's `evaluate()` (also in `info` after each step); 'success' is the goal."""
    tracked_actors: tuple[str, ...]
    """Attributes of the unwrapped env whose poses are recorded as privileged state."""
    grasp_actor: str | None = None
    """The actor the robot must hold, if any; `is_grasped` is recorded for it."""
    control_mode: str = "pd_ee_delta_pose"
    control_freq: int = 20
    """Hz; one policy action per control step."""
    obs_mode: str = "rgb"
    goal_inputs: tuple[str, ...] = ()
    """Keys of the env's `obs["extra"]` that state the goal and are given to the policy beside
    proprioception (PickCube's `goal_pos`, the point the cube must reach: part of the command, as the
    instruction is, and part of ManiSkill3's own observation)."""
    expert: str = "planner"
    """Source of `stare-demos` demonstrations: 'planner' (ManiSkill3's motion planner, converted) or
    'scripted' (a closed-loop end-effector controller in `sim_training.demos.scripted`)."""
    revealed_actors: tuple[str, ...] = ()
    """Actors the env hides from sensor cameras that the policy must see (PickCube's goal marker)."""
    required_assets: tuple[str, ...] = ()
    """ManiSkill3 data-source ids that must be on disk (under MS_ASSET_DIR) before the env is built."""
    motion_planner: bool = True
    """Whether ManiSkill3 ships a motion-planning solution that `stare-demos` can run."""
    accepts_robot_choice: bool = True
    """False where the env fixes its robot itself (Bridge digital twins)."""
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    """Any further keyword arguments for `gym.make`."""

    @property
    def instruction(self) -> str:
        return self.instructions[0]

    @property
    def stages(self) -> TaskStages | None:
        """The task's StARe stages, kept in `stare_policy.stages.tasks` so that the robot-side segmenter,
        which has only `stare_policy`, reads the same definition (None for tasks without stages)."""
        return STAGE_SPECS.get(self.env_id)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "TaskSpec":
        data = dict(data)
        data["camera"] = CameraSpec.from_dict(data["camera"])
        for key in ("instructions", "success_flags", "tracked_actors", "revealed_actors", "required_assets",
                    "goal_inputs"):
            data[key] = tuple(data.get(key, ()))
        return cls(**data)
