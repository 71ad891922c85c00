"""Closed-loop episodes of a policy in ManiSkill3: one seed per episode, every seed reproducible.

CPU: an `AsyncVectorEnv` of K spawned workers; an episode ends at its first success (ManiSkill3's
"success once") or at the time limit, and its worker is reset at once with the next seed
(`reset_mask`), so no worker idles until the seeds run out. GPU: one batched simulation; episodes run
in waves of K seeds (all envs of a wave start together and run to the time limit). The policy acts for
all envs in one batched call per control step.

Where StARe knows the task (`stare_policy.stages`), envs come from `make_shaped_vector_env`, whose
online privileged separator reports `info["stage"]`; each episode records the furthest stage reached.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable

import gymnasium as gym
import numpy as np
import torch

from sim_training.envs.worker_slots import WorkerSlots
from sim_training.tasks import TaskSpec

Act = Callable[[np.ndarray, dict[str, np.ndarray]], np.ndarray]
"""(images (K, H, W, 3) uint8, proprio {qpos, tcp_pose, goal inputs}) -> actions (K, 7)."""


@dataclass
class EpisodeRecord:
    seed: int
    success: bool = False
    length: int = 0
    furthest_stage: int | None = None
    frames: list[np.ndarray] = field(default_factory=list)


@dataclass
class RolloutStats:
    env_steps: int = 0
    """Steps of episodes in progress (idle envs at the tail not counted)."""
    seconds: float = 0.0
    policy_seconds: float = 0.0
    reset_seconds: float = 0.0
    """Time in the simulator's resets between episodes (CPU workers)."""


def _numpy(value: Any) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def batched_inputs(obs: dict, spec: TaskSpec) -> tuple[np.ndarray | torch.Tensor, dict[str, np.ndarray]]:
    """What the policy sees, for every env of a vector env (the batched form of `policy_inputs`)."""
    image = obs["sensor_data"][spec.camera.name]["rgb"]
    proprio = {"qpos": _numpy(obs["agent"]["qpos"]), "tcp_pose": _numpy(obs["extra"]["tcp_pose"])}
    proprio.update({key: _numpy(obs["extra"][key]) for key in spec.goal_inputs})
    return image, proprio


def _flag(info: dict, key: str, n: int) -> np.ndarray:
    if key not in info:
        return np.zeros(n, dtype=bool if key != "stage" else np.int64)
    return _numpy(info[key]).reshape(n)


def run_async(env: gym.vector.AsyncVectorEnv, spec: TaskSpec, act: Act, seeds: list[int], *, video_episodes: int = 0,
              on_episode: Callable[[EpisodeRecord], None] | None = None) -> tuple[list[EpisodeRecord], RolloutStats]:
    """Episodes on CPU workers, each worker taking the next seed as soon as its episode ends."""
    k = env.num_envs
    records = [EpisodeRecord(seed) for seed in seeds]
    slots = WorkerSlots(len(seeds), k)
    stats, start = RolloutStats(), time.perf_counter()
    obs, _ = env.reset(seed=slots.seeds(seeds.__getitem__))
    while slots.running:
        images, proprio = batched_inputs(obs, spec)
        t0 = time.perf_counter()
        actions = act(images, proprio)
        stats.policy_seconds += time.perf_counter() - t0
        obs, _, terminated, truncated, info = env.step(actions)
        success, stage = _flag(info, "success", k), _flag(info, "stage", k)
        done = np.zeros(k, dtype=bool)
        for w, e in slots.active():
            rec = records[e]
            rec.length += 1
            stats.env_steps += 1
            if "stage" in info:
                rec.furthest_stage = max(rec.furthest_stage or 0, int(stage[w]))
            if e < video_episodes:
                rec.frames.append(np.asarray(images[w]).copy())
            rec.success = bool(success[w])
            done[w] = rec.success or bool(terminated[w]) or bool(truncated[w])
            if done[w] and on_episode:
                on_episode(rec)
        reset = slots.reassign(done)
        if reset.any():
            t0 = time.perf_counter()
            obs, _ = env.reset(seed=slots.seeds(seeds.__getitem__, reset), options={"reset_mask": reset})
            stats.reset_seconds += time.perf_counter() - t0
    stats.seconds = time.perf_counter() - start
    return records, stats


def run_waves(env: gym.Env, spec: TaskSpec, act: Act, seeds: list[int], *, video_episodes: int = 0,
              on_episode: Callable[[EpisodeRecord], None] | None = None) -> tuple[list[EpisodeRecord], RolloutStats]:
    """Episodes in a batched (GPU) vector env: waves of `num_envs` seeds that run to the time limit."""
    k = env.num_envs
    records = [EpisodeRecord(seed) for seed in seeds]
    stats, start = RolloutStats(), time.perf_counter()
    for first in range(0, len(seeds), k):
        wave = list(range(first, min(first + k, len(seeds))))
        obs, _ = env.reset(seed=[seeds[e] for e in wave] + [0] * (k - len(wave)))
        running = np.zeros(k, dtype=bool)
        running[: len(wave)] = True
        for _ in range(spec.max_episode_steps):
            images, proprio = batched_inputs(obs, spec)
            t0 = time.perf_counter()
            actions = act(images, proprio)
            stats.policy_seconds += time.perf_counter() - t0
            obs, _, terminated, truncated, info = env.step(torch.as_tensor(actions))
            success, stage = _flag(info, "success", k), _flag(info, "stage", k)
            for w, e in enumerate(wave):
                if not running[w]:
                    continue
                rec = records[e]
                rec.length += 1
                stats.env_steps += 1
                if "stage" in info:
                    rec.furthest_stage = max(rec.furthest_stage or 0, int(stage[w]))
                if e < video_episodes:
                    rec.frames.append(_numpy(images[w]).copy())
                rec.success = bool(success[w])
                if rec.success or bool(_numpy(truncated).reshape(k)[w]) or bool(_numpy(terminated).reshape(k)[w]):
                    running[w] = False
                    if on_episode:
                        on_episode(rec)
            if not running.any():
                break
        for w, e in enumerate(wave):
            if running[w] and on_episode:
                on_episode(records[e])
    stats.seconds = time.perf_counter() - start
    return records, stats
