"""Rollouts of a policy for preference learning: K rollouts from each of N initial states, sampled with a
temperature, recorded in the dataset format (policy inputs, action, privileged state, success flags) so
that StARe can label them and `pairs.py` can pair those that share a start.

Each rollout's sampling is seeded from (initial state, rollout index), so a rollout set is reproducible.
"""

from __future__ import annotations

from typing import Callable, Iterator

import numpy as np
import torch

from sim_training.data import Episode
from sim_training.demos.expert import _StepLog
from sim_training.envs import make_env
from sim_training.envs.observation import fill_absent_goal_inputs, policy_inputs
from sim_training.tasks import TaskSpec, get_task
from stare_policy.model.vla import Temperature, per_dimension


class PolicyRolloutGenerator:
    """Owns one recording env; `rollout(seed, k)` runs the policy from `reset(seed)` until success or the
    step limit."""

    def __init__(self, policy, task: str | TaskSpec, temperature: Temperature, max_steps: int | None = None,
                 instruction: str | None = None):
        per_dimension(temperature, policy.model.config.action_dim)  # raises on a bad value
        self.policy, self.spec, self.temperature = policy, get_task(task), temperature
        self.max_steps = max_steps or self.spec.max_episode_steps
        self.instruction = instruction or self.spec.instruction
        self.env = _StepLog(make_env(self.spec), self.spec)

    def rollout(self, seed: int, k: int) -> Episode:
        generator = torch.Generator(device=self.policy.device).manual_seed(seed * 1_000 + k)
        obs, _ = self.env.reset(seed=seed)
        initial_state = self.env.unwrapped.get_state().cpu().numpy().reshape(-1).astype(np.float32)
        success = False
        for _ in range(self.max_steps):
            seen = policy_inputs(obs, self.spec)
            image = seen.pop("image")
            cfg = self.policy.processor.config
            seen = fill_absent_goal_inputs(seen, cfg.proprio_keys, cfg.proprio_dims, self.spec)
            action = self.policy.act(image, self.instruction, seen, temperature=self.temperature,
                                     generator=generator)
            obs, _, _, _, info = self.env.step(np.asarray(action, np.float32)[None])
            success = bool(np.asarray(info["success"].cpu()).any())
            if success:
                break
        arrays = self.env.arrays()
        arrays["initial_state"] = initial_state
        return Episode(arrays, seed, self.instruction, success, {"rollout": k, "temperature": self.temperature})

    def close(self) -> None:
        self.env.close()


def rollouts(generator: PolicyRolloutGenerator, seeds: list[int], per_state: int,
             progress: Callable[[Episode], None] | None = None) -> Iterator[Episode]:
    """Every (initial state, rollout index) pair in order."""
    for seed in seeds:
        for k in range(per_state):
            episode = generator.rollout(seed, k)
            if progress:
                progress(episode)
            yield episode
