"""Rollouts of a policy for preference learning: K rollouts from each of N initial states, sampled with a
temperature (within a window around the greedy bins, when given), recorded in the dataset format (policy inputs, action, privileged state, success flags) so
that StARe can label them and `pairs.py` can pair those that share a start.

Each rollout's sampling is seeded from (initial state, rollout index), so a rollout set is reproducible.
`vector_rollouts` runs them on K simulator workers with one batched policy call per step (each worker
takes the next (state, index) job as soon as its rollout ends); its sampling draws from one generator
for the batch, so a set is reproducible for the same K.
"""

from __future__ import annotations

import functools
from typing import Callable, Iterator

import numpy as np
import torch

from sim_training.data import Episode
from sim_training.demos.expert import _StepLog
from sim_training.envs import make_env
from sim_training.envs.worker_slots import WorkerSlots
from sim_training.envs.observation import policy_inputs
from sim_training.tasks import TaskSpec, get_task
from stare_policy.model.vla import Temperature, check_window, per_dimension


class PolicyRolloutGenerator:
    """Owns one recording env; `rollout(seed, k)` runs the policy from `reset(seed)` until success or the
    step limit."""

    def __init__(self, policy, task: str | TaskSpec, temperature: Temperature, max_steps: int | None = None,
                 instruction: str | None = None, window: int | None = None, greedy_prefix: bool = False):
        per_dimension(temperature, policy.model.config.action_dim)  # raises on a bad value
        check_window(window)
        self.policy, self.spec, self.temperature, self.window = policy, get_task(task), temperature, window
        self.greedy_prefix = greedy_prefix
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
            action = self.policy.act(image, self.instruction, seen, temperature=self.temperature,
                                     generator=generator, window=self.window, greedy_prefix=self.greedy_prefix)
            obs, _, _, _, info = self.env.step(np.asarray(action, np.float32)[None])
            success = bool(np.asarray(info["success"].cpu()).any())
            if success:
                break
        arrays = self.env.arrays()
        arrays["initial_state"] = initial_state
        return Episode(arrays, seed, self.instruction, success,
                       {"rollout": k, "temperature": self.temperature, "window": self.window,
                        "greedy_prefix": self.greedy_prefix})

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


class RolloutLog(_StepLog):
    """`_StepLog` that also keeps the simulator state right after each reset (replay starts from it) and
    hands its episode over in one call (`AsyncVectorEnv.call("episode")` from the learner's process)."""

    def reset(self, **kwargs):
        obs, info = super().reset(**kwargs)
        self.initial_state = self.env.unwrapped.get_state().cpu().numpy().reshape(-1).astype(np.float32)
        return obs, info

    def episode(self) -> dict[str, np.ndarray] | None:
        if not self.steps:
            return None
        arrays = self.arrays()
        arrays["initial_state"] = self.initial_state
        return arrays


def _logged(env, spec: TaskSpec):
    return RolloutLog(env, spec)


def vector_rollouts(policy, task: str | TaskSpec, jobs: list[tuple[int, int]], workers: int, temperature: Temperature,
                    *, max_steps: int | None = None, instruction: str | None = None, seed: int = 0,
                    window: int | None = None, greedy_prefix: bool = False) -> Iterator[Episode]:
    """Rollouts for (seed, rollout index) jobs on `workers` CPU simulator processes, yielded as they end."""
    from sim_training.envs import make_vector_env
    from sim_training.evaluation.rollout import batched_inputs

    per_dimension(temperature, policy.model.config.action_dim)
    check_window(window)
    spec = get_task(task)
    instruction = instruction or spec.instruction
    max_steps = max_steps or spec.max_episode_steps
    generator = torch.Generator(device=policy.device).manual_seed(seed)
    k = min(workers, len(jobs))
    env = make_vector_env(spec, k, wrap=functools.partial(_logged, spec=spec), max_episode_steps=max_steps)
    try:
        slots = WorkerSlots(len(jobs), k)
        seed_of = lambda j: jobs[j][0]  # noqa: E731
        steps, success = [0] * k, [False] * k
        obs, _ = env.reset(seed=slots.seeds(seed_of))
        while slots.running:
            images, proprio = batched_inputs(obs, spec)
            actions = policy.act(images, instruction, proprio, temperature=temperature, generator=generator,
                                 window=window, greedy_prefix=greedy_prefix)
            obs, _, terminated, truncated, info = env.step(np.asarray(actions, np.float32))
            won = np.asarray(info["success"]).reshape(k).astype(bool)
            done = np.zeros(k, dtype=bool)
            for w, _ in slots.active():
                steps[w] += 1
                success[w] = bool(won[w])
                done[w] = success[w] or steps[w] >= max_steps or bool(terminated[w]) or bool(truncated[w])
            if not done.any():
                continue
            logs = env.call("episode")
            for w in np.flatnonzero(done):
                seed, index = jobs[slots.job[w]]
                yield Episode(logs[w], seed, instruction, success[w],
                              {"rollout": index, "temperature": temperature, "window": window,
                               "greedy_prefix": greedy_prefix, "workers": k})
                steps[w], success[w] = 0, False
            reset = slots.reassign(done)
            if reset.any():
                obs, _ = env.reset(seed=slots.seeds(seed_of, reset), options={"reset_mask": reset})
    finally:
        env.close()
