"""StA-PPO's dense reward: r' = r + gamma * Phi(s') - Phi(s), with the StARe stage potentials.

The stage is tracked online from privileged simulator state (TCP, object and target poses, grasp
contact), so the wrapper must sit directly on a ManiSkill3 env. It serves every way STARE builds envs:
one CPU env (batched torch, N=1), one GPU-batched env of N envs (wrap it, then `ManiSkillVectorEnv`,
whose partial resets arrive here as `reset(options={"env_idx": ...})`), and `AsyncVectorEnv` workers
(each worker wraps its own env; gymnasium's autoreset calls the worker's `reset`).
"""

from __future__ import annotations

import functools
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from sim_training.envs.factory import make_vector_env
from sim_training.tasks import TaskSpec
from stare_policy.stages import PrivilegedSeparator, TaskStages, compute_measures, potential, stage_spec


def _numpy(value) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def _like(values: np.ndarray, reference):
    """`values` (N,) in the container type and shape of `reference` (an env's reward or info entry)."""
    if isinstance(reference, torch.Tensor):
        return torch.as_tensor(values, device=reference.device, dtype=reference.dtype).reshape(reference.shape)
    if np.ndim(reference) == 0:
        return values.reshape(-1)[0].item()
    return values.reshape(np.shape(reference))


class ShapedReward(gym.Wrapper):
    """Adds the stage-potential shaping term to the reward and reports `stage`, `stage_potential`,
    `shaping` and `stage_regressed` in `info`."""

    def __init__(self, env: gym.Env, stages: TaskStages | None = None, *, gamma: float = 0.99,
                 monotone: bool = True):
        super().__init__(env)
        base = env.unwrapped
        self.stages = stages or stage_spec(base.spec.id)
        self.gamma = gamma
        self.num_envs = int(getattr(base, "num_envs", 1))
        self.separator = PrivilegedSeparator(self.stages, self.num_envs, monotone=monotone)
        self.phi = np.zeros(self.num_envs)

    def _state(self, action=None) -> dict[str, np.ndarray]:
        """Privileged state of all N envs, under the dataset's names."""
        base = self.env.unwrapped
        obj = getattr(base, self.stages.object)
        state = {
            "priv.tcp_pose": _numpy(base.agent.tcp.pose.raw_pose).reshape(self.num_envs, 7),
            f"priv.{self.stages.object}_pose": _numpy(obj.pose.raw_pose).reshape(self.num_envs, 7),
            "priv.is_grasped": _numpy(base.agent.is_grasping(obj)).reshape(self.num_envs),
        }
        if self.stages.target is not None:
            target = getattr(base, self.stages.target).pose.raw_pose
            state[f"priv.{self.stages.target}_pose"] = _numpy(target).reshape(self.num_envs, 7)
        gripper = np.ones(self.num_envs) if action is None else _numpy(action).reshape(self.num_envs, -1)[:, -1]
        state["gripper"] = gripper
        return state

    def reset(self, *, seed=None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        idx = None if not options or options.get("env_idx") is None else _numpy(options["env_idx"]).reshape(-1)
        state = self._state()
        stage = self.separator.reset(state, idx)
        phi = potential(stage, compute_measures(state, self.stages, self.separator.object_start), self.stages)
        rows = slice(None) if idx is None else idx
        self.phi[rows] = phi[rows]
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        stage, measures, regressed = self.separator.step(self._state(action))
        phi_next = potential(stage, measures, self.stages)
        shaping = self.gamma * phi_next - self.phi
        self.phi = phi_next
        if isinstance(reward, torch.Tensor) and not reward.is_floating_point():  # sparse reward: a success flag
            reward = reward.float()
        reward = reward + _like(shaping, reward)
        batched = isinstance(reward, torch.Tensor)
        for key, values in (("stage", stage), ("stage_potential", phi_next), ("shaping", shaping),
                            ("stage_regressed", regressed)):
            info[key] = torch.as_tensor(values, device=reward.device) if batched else values.reshape(-1)[0].item()
        return obs, reward, terminated, truncated, info


def make_shaped_vector_env(task: str | TaskSpec, num_envs: int, *, gamma: float = 0.99,
                           **kwargs: Any) -> gym.vector.VectorEnv:
    """`make_vector_env` with stage-shaped rewards: spawned CPU workers, or one GPU batch."""
    return make_vector_env(task, num_envs, wrap=functools.partial(ShapedReward, gamma=gamma), **kwargs)
