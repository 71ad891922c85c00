"""Closed-loop episodes of a policy in ManiSkill3: one seed per episode, every seed reproducible.

CPU: an `AsyncVectorEnv` of K spawned workers; an episode ends at its first success (ManiSkill3's
"success once") or at the time limit, and its worker is reset at once with the next seed
(`reset_mask`), so no worker idles until the seeds run out. GPU: one batched simulation; episodes run
in waves of K seeds (all envs of a wave start together and run to the time limit). The policy acts for
all envs in one batched call per control step; on CPU workers split into groups, for one group at a time
while the other groups simulate (`run_async`).

Where StARe knows the task (`stare_policy.stages`), envs come from `make_shaped_vector_env`, whose
online privileged separator reports `info["stage"]`; each episode records the furthest stage reached.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import gymnasium as gym
import numpy as np
import torch

from sim_training.envs.worker_slots import IDLE, WorkerSlots
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


def _count_step(rec: EpisodeRecord, stats: RolloutStats, info: dict, stage: np.ndarray, success: np.ndarray,
                i: int) -> None:
    """One step of an episode in progress (env i of the batch): its length, furthest stage and success."""
    rec.length += 1
    stats.env_steps += 1
    if "stage" in info:
        rec.furthest_stage = max(rec.furthest_stage or 0, int(stage[i]))
    rec.success = bool(success[i])


def run_async(envs: gym.vector.AsyncVectorEnv | Sequence[gym.vector.AsyncVectorEnv], spec: TaskSpec, act: Act,
              seeds: list[int], *, video_episodes: int = 0,
              on_episode: Callable[[EpisodeRecord], None] | None = None) -> tuple[list[EpisodeRecord], RolloutStats]:
    """Episodes on CPU workers, each worker taking the next seed as soon as its episode ends.

    `envs` is one vector env, or several (groups of workers) that are stepped in turn: the policy acts for
    one group while the others simulate, so its time hides behind theirs instead of adding to it. Seeds
    go to workers in the same order whatever the grouping (one `WorkerSlots` over all workers).
    """
    groups = [envs] if isinstance(envs, gym.vector.VectorEnv) else list(envs)
    bounds = np.cumsum([0, *(g.num_envs for g in groups)])
    k = int(bounds[-1])
    records = [EpisodeRecord(seed) for seed in seeds]
    slots = WorkerSlots(len(seeds), k)
    stats, start = RolloutStats(), time.perf_counter()
    obs: list[Any] = [None] * len(groups)
    stepping = [False] * len(groups)

    def members(g: int) -> range:
        return range(int(bounds[g]), int(bounds[g + 1]))

    def group_seeds(g: int, mask: np.ndarray | None = None) -> list[int]:
        return slots.seeds(seeds.__getitem__, mask)[bounds[g]:bounds[g + 1]]

    def launch(g: int) -> None:
        """The policy's actions for group g's current observations, sent to its workers."""
        images, proprio = batched_inputs(obs[g], spec)
        t0 = time.perf_counter()
        actions = act(images, proprio)
        stats.policy_seconds += time.perf_counter() - t0
        for i, w in enumerate(members(g)):
            e = slots.job[w]
            if e != IDLE and e < video_episodes:
                records[e].frames.append(np.asarray(images[i]).copy())
        groups[g].step_async(actions)
        stepping[g] = True

    for g, env in enumerate(groups):
        obs[g], _ = env.reset(seed=group_seeds(g))
    for g in range(len(groups)):
        launch(g)
    while any(stepping):
        for g, env in enumerate(groups):
            if not stepping[g]:
                continue
            obs[g], _, terminated, truncated, info = env.step_wait()
            stepping[g] = False
            n = env.num_envs
            success, stage = _flag(info, "success", n), _flag(info, "stage", n)
            done = np.zeros(k, dtype=bool)
            for i, w in enumerate(members(g)):
                e = slots.job[w]
                if e == IDLE:
                    continue
                rec = records[e]
                _count_step(rec, stats, info, stage, success, i)
                done[w] = rec.success or bool(terminated[i]) or bool(truncated[i])
                if done[w] and on_episode:
                    on_episode(rec)
            reset = slots.reassign(done)
            if reset.any():
                t0 = time.perf_counter()
                obs[g], _ = env.reset(seed=group_seeds(g, reset), options={"reset_mask": reset[bounds[g]:bounds[g + 1]]})
                stats.reset_seconds += time.perf_counter() - t0
            if any(slots.job[w] != IDLE for w in members(g)):
                launch(g)  # a group whose workers have no episode left is not stepped again
    stats.seconds = time.perf_counter() - start
    return records, stats


def split_workers(workers: int, groups: int) -> list[int]:
    """Worker counts of `groups` groups (as even as possible, none empty)."""
    groups = max(1, min(groups, workers))
    return [workers // groups + (1 if g < workers % groups else 0) for g in range(groups)]


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
                _count_step(rec, stats, info, stage, success, w)
                if e < video_episodes:
                    rec.frames.append(_numpy(images[w]).copy())
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
