"""A ManiSkill3 env as the robot, without ROS: reset with a seed, step with a normalised
pd_ee_delta_pose action, and read back what a robot would publish (camera image and intrinsics, joint
positions) plus what only a simulator knows (success, privileged StARe stage), kept apart so that the
policy side never sees it. Episodes end as `stare-eval`'s do: at the first success or the time limit."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch


@dataclass
class SimObservation:
    image: np.ndarray
    """(H, W, 3) uint8 RGB of the task's policy camera."""
    qpos: np.ndarray
    """(9,) joint positions, in `SimRobot.joint_names` order."""
    qvel: np.ndarray
    goal: np.ndarray | None
    """The task's goal point (PickCube's goal_pos), None for tasks without one."""
    step: int
    success: bool = False
    stage: int | None = None
    """Privileged StARe stage (evaluation only), None for tasks without stages."""
    done: bool = False
    outcome: str = ""
    """'success' or 'timeout' once done."""


def _first(value) -> np.ndarray:
    value = value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)
    return value[0] if value.ndim >= 1 and value.shape[0] == 1 else value


class SimRobot:
    def __init__(self, task: str, max_episode_steps: int = 0):
        from sim_training.envs import make_env
        from sim_training.tasks import get_task

        self.spec = get_task(task)
        env = make_env(self.spec)
        if self.spec.stages is not None:
            from sim_training.envs.shaped_reward import ShapedReward

            env = ShapedReward(env)
        self.env = env
        self.max_episode_steps = max_episode_steps or self.spec.max_episode_steps
        robot = env.unwrapped.agent.robot
        self.joint_names = [joint.name for joint in robot.get_active_joints()]
        self.base_pose = _first(robot.pose.raw_pose).astype(float).tolist()
        """Robot base in the world frame (x y z qw qx qy qz): the policy_server's `base_pose`."""
        self.stage_names = self.spec.stages.names if self.spec.stages is not None else ()
        self.obs: SimObservation | None = None

    @property
    def control_rate_hz(self) -> float:
        return float(self.spec.control_freq)

    def tcp_pose(self) -> np.ndarray:
        """The TCP pose the env gives the policy (xyz + wxyz, world frame), for comparisons with the
        forward kinematics the policy_server uses on a robot."""
        return _first(self.env.unwrapped.agent.tcp.pose.raw_pose).astype(np.float32)

    def camera_matrix(self) -> np.ndarray:
        params = self.env.unwrapped.scene.sensors[self.spec.camera.name].get_params()
        return _first(params["intrinsic_cv"]).astype(float)

    def _observation(self, raw: dict, step: int, info: dict | None = None) -> SimObservation:
        goal = _first(raw["extra"][self.spec.goal_inputs[0]]).astype(float) if self.spec.goal_inputs else None
        obs = SimObservation(
            image=_first(raw["sensor_data"][self.spec.camera.name]["rgb"]).astype(np.uint8),
            qpos=_first(raw["agent"]["qpos"]).astype(float), qvel=_first(raw["agent"]["qvel"]).astype(float),
            goal=goal, step=step)
        if info is not None:
            obs.success = bool(_first(info.get("success", False)))
            if "stage" in info:
                obs.stage = int(_first(info["stage"]))
        elif self.stage_names:
            obs.stage = 0
        return obs

    def reset(self, seed: int) -> SimObservation:
        raw, _ = self.env.reset(seed=seed)
        self.obs = self._observation(raw, 0)
        return self.obs

    def step(self, action: np.ndarray) -> SimObservation:
        if self.obs is None or self.obs.done:
            raise RuntimeError("step() needs a running episode: reset() first")
        action = np.clip(np.asarray(action, np.float32).reshape(1, 7), -1.0, 1.0)
        raw, _, terminated, truncated, info = self.env.step(torch.as_tensor(action))
        obs = self._observation(raw, self.obs.step + 1, info)
        if obs.success:
            obs.done, obs.outcome = True, "success"
        elif obs.step >= self.max_episode_steps or bool(_first(truncated)) or bool(_first(terminated)):
            obs.done, obs.outcome = True, "timeout"
        self.obs = obs
        return obs

    def close(self) -> None:
        self.env.close()
