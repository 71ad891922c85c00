"""PPO's baseline reward (RL4VLA, arXiv 2505.19789): a sparse grasp/success potential, differenced over time.

    psi(s) = 0.1 * grasped + 0.1 * (grasped for the last 5 steps) + 1.0 * (success and grasped)
    r_t    = psi(s_{t+1}) - psi(s_t)

so an episode's (undiscounted) return is psi at its end: 1.2 for a success holding the object, 0 for one
that never grasped. A task without a grasp actor (push, pull) keeps only the success term. The env's own
reward is replaced (build the env with `reward_mode="sparse"` to skip computing a dense one); StA-PPO adds
StARe's stage shaping on top (`ShapedReward` wrapped around this one). `info["sparse_reward"]` reports r_t.

Like `ShapedReward`, it serves one CPU env (numpy after `CPUGymWrapper`), a GPU batch of N envs (torch,
partial resets as `reset(options={"env_idx": ...})`), and `AsyncVectorEnv` workers.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch

from sim_training.envs.shaped_reward import _like, _numpy


class GraspSuccessReward(gym.Wrapper):
    def __init__(self, env: gym.Env, grasp_actor: str | None, *, grasp: float = 0.1, held: float = 0.1,
                 held_steps: int = 5, success: float = 1.0):
        super().__init__(env)
        self.grasp_actor = grasp_actor
        self.weights = (grasp, held, success)
        self.held_steps = held_steps
        self.num_envs = int(getattr(env.unwrapped, "num_envs", 1))
        self.grasped_for = np.zeros(self.num_envs, dtype=np.int64)
        self.psi = np.zeros(self.num_envs)

    def _grasped(self) -> np.ndarray:
        if self.grasp_actor is None:
            return np.ones(self.num_envs, dtype=bool)
        base = self.env.unwrapped
        return _numpy(base.agent.is_grasping(getattr(base, self.grasp_actor))).reshape(self.num_envs).astype(bool)

    def reset(self, *, seed=None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        rows = slice(None) if not options or options.get("env_idx") is None else _numpy(options["env_idx"]).reshape(-1)
        self.grasped_for[rows] = 0  # every task starts with an empty gripper (contacts are stale right after a reset)
        self.psi[rows] = 0.0
        return obs, info

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        grasped = self._grasped()
        success = _numpy(info["success"]).reshape(self.num_envs).astype(bool)
        self.grasped_for = np.where(grasped, self.grasped_for + 1, 0)
        w_grasp, w_held, w_success = self.weights
        if self.grasp_actor is None:
            psi = w_success * success
        else:
            psi = w_grasp * grasped + w_held * (self.grasped_for >= self.held_steps) + w_success * (success & grasped)
        sparse = psi - self.psi
        self.psi = psi.astype(np.float64)
        reward = _like(sparse, reward.float() if isinstance(reward, torch.Tensor) else np.asarray(reward, float))
        info["sparse_reward"] = reward.clone() if isinstance(reward, torch.Tensor) else reward
        return obs, reward, terminated, truncated, info
