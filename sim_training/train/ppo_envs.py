"""The environments PPO learns in, and one `step` for both ways STARE simulates them.

    envs = make_rl_envs(spec, num_envs, stage_aware=False, gamma=0.99)       # CPU workers or a GPU batch
    stepper = EnvStepper(envs, spec, first_seed=100_000)
    obs = stepper.reset()
    out = stepper.step(actions)        # rewards, terminated/truncated, final observations, finished episodes

The reward is RL4VLA's grasp/success potential (`GraspSuccessReward`); `stage_aware=True` (StA-PPO) adds
StARe's stage-potential shaping on top (`ShapedReward`). That wrapper choice is the whole difference.

Episodes end on a time-limit truncation and, with `terminate_on_success`, at their first success (as
evaluation counts them). The stepper resets ended envs itself, each with the next episode seed, and hands
back the ending step's observation of truncated envs, from which PPO bootstraps V(s_final).
CPU: `AsyncVectorEnv` workers, every call bounded by a timeout. GPU: ManiSkill3's batched vector env, which
resets truncated envs itself (seeded by its batch RNG) and reports their last step in `final_info`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from sim_training.envs import make_vector_env
from sim_training.envs.grasp_success_reward import GraspSuccessReward
from sim_training.envs.shaped_reward import ShapedReward
from sim_training.evaluation.rollout import batched_inputs
from sim_training.tasks import TaskSpec


def _rewards(env: gym.Env, *, grasp_actor: str | None, stage_aware: bool, gamma: float) -> gym.Env:
    env = GraspSuccessReward(env, grasp_actor)
    return ShapedReward(env, gamma=gamma) if stage_aware else env


def make_rl_envs(spec: TaskSpec, num_envs: int, *, stage_aware: bool, gamma: float, sim_backend: str = "cpu",
                 max_episode_steps: int | None = None) -> gym.vector.VectorEnv:
    """`num_envs` envs of the task with PPO's reward (StA-PPO's when `stage_aware`)."""
    wrap = functools.partial(_rewards, grasp_actor=spec.grasp_actor, stage_aware=stage_aware, gamma=gamma)
    return make_vector_env(spec, num_envs, sim_backend=sim_backend, wrap=wrap, reward_mode="sparse",
                           max_episode_steps=max_episode_steps)


def _numpy(value: Any) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def _rows(obs: Any, rows: np.ndarray) -> Any:
    """The given env rows of a (nested) batched observation, copied."""
    if isinstance(obs, dict):
        return {k: _rows(v, rows) for k, v in obs.items()}
    return obs[torch.as_tensor(rows, device=obs.device)].clone() if isinstance(obs, torch.Tensor) else obs[rows].copy()


@dataclass
class Episode:
    seed: int
    success: bool = False
    """Succeeded at some step (ManiSkill3's success_once)."""
    length: int = 0
    ret: float = 0.0
    """Undiscounted return of the training reward."""


@dataclass
class StepOut:
    obs: dict
    """The observation to act on next (reset envs already show their new episode)."""
    reward: np.ndarray
    """(N,) training reward: the sparse potential reward, plus the stage shaping under StA-PPO."""
    shaping: np.ndarray
    """(N,) the stage-shaping part of `reward` (0 under PPO)."""
    terminated: np.ndarray
    """(N,) episode ended for good (success): no bootstrapping."""
    truncated: np.ndarray
    """(N,) episode cut by the time limit: bootstrap from the value of `final_obs`."""
    final_obs: dict | None
    """The ending step's observation of the truncated envs only (rows in order), or None."""
    finished: list[Episode] = field(default_factory=list)


class EnvStepper:
    def __init__(self, env: gym.vector.VectorEnv, spec: TaskSpec, *, first_seed: int, terminate_on_success: bool = True,
                 timeout_s: float = 1800.0, seed_stride: int = 1):
        """Episodes take seeds first_seed, first_seed + seed_stride, ...: data-parallel rank r of N starts at
        base + r with stride N, so no two ranks play the same episode."""
        self.env, self.spec = env, spec
        self.n = env.num_envs
        self.gpu = not isinstance(env, gym.vector.AsyncVectorEnv)
        self.next_seed = first_seed
        self.seed_stride = seed_stride
        self.terminate_on_success = terminate_on_success
        self.timeout_s = timeout_s
        self.episodes: list[Episode] = []

    def _seeds(self, mask: np.ndarray) -> list[int]:
        seeds = [0] * self.n
        for i in np.flatnonzero(mask):
            seeds[i] = self.next_seed
            self.episodes[i] = Episode(self.next_seed)
            self.next_seed += self.seed_stride
        return seeds

    def reset(self) -> dict:
        self.episodes = [Episode(0) for _ in range(self.n)]
        seeds = self._seeds(np.ones(self.n, bool))
        if self.gpu:
            obs, _ = self.env.reset(seed=seeds)
            return obs
        self.env.reset_async(seed=seeds)
        return self.env.reset_wait(timeout=self.timeout_s)[0]

    def inputs(self, obs: dict) -> tuple[Any, dict[str, np.ndarray]]:
        """(images (N, H, W, 3) uint8, proprio {key: (N, d)}): what the policy reads."""
        return batched_inputs(obs, self.spec)

    def step(self, actions: np.ndarray) -> StepOut:
        if self.gpu:
            obs, reward, terminated, truncated, info = self.env.step(torch.as_tensor(actions, device=self.env.device))
            final_obs = info.get("final_observation")
            info = info.get("final_info", info)  # after an auto-reset, this step's info of every env is there
        else:
            self.env.step_async(actions)
            obs, reward, terminated, truncated, info = self.env.step_wait(timeout=self.timeout_s)
            final_obs = obs
        reward = _numpy(reward).astype(np.float64).reshape(self.n)
        success = _numpy(info["success"]).reshape(self.n).astype(bool)
        shaping = _numpy(info["shaping"]).reshape(self.n) if "shaping" in info else np.zeros(self.n)
        truncated = _numpy(truncated).reshape(self.n).astype(bool)
        terminated = _numpy(terminated).reshape(self.n).astype(bool)
        if self.terminate_on_success:
            terminated |= success
        truncated &= ~terminated
        done = terminated | truncated
        finished = []
        for i, episode in enumerate(self.episodes):
            episode.length += 1
            episode.ret += float(reward[i])
            episode.success |= bool(success[i])
            if done[i]:
                finished.append(episode)
        final = _rows(final_obs, np.flatnonzero(truncated)) if truncated.any() else None
        if done.any():
            # GPU: the vector env reset the truncated envs already; the succeeded ones are reset here.
            mask = terminated if self.gpu else done
            seeds = self._seeds(done)
            if self.gpu and mask.any():
                obs, _ = self.env.reset(options={"env_idx": torch.as_tensor(np.flatnonzero(mask), device=self.env.device)})
            elif not self.gpu:
                self.env.reset_async(seed=seeds, options={"reset_mask": done})
                obs = self.env.reset_wait(timeout=self.timeout_s)[0]
        return StepOut(obs, reward, shaping, terminated, truncated, final, finished)
