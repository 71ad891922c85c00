"""Evaluate a policy on one task: closed-loop episodes on consecutive seeds, summary, videos."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
import torch

from sim_training.evaluation.report import EvalSummary, summarize, write_video
from sim_training.envs.gpu_physics import GPU_SIM_BACKENDS
from sim_training.evaluation.rollout import EpisodeRecord, run_async, run_waves, split_workers
from sim_training.evaluation.stages import make_eval_env, stage_completion
from sim_training.tasks import TaskSpec
from stare_policy.model.vla import action_temperature, check_window, per_dimension
from stare_policy.policy import VLAPolicy

EVAL_SEED_START = 1_000_000
"""Evaluation seeds start far from the demonstration seeds (which start at 0)."""


def evaluate(
    policy: VLAPolicy,
    spec: TaskSpec,
    *,
    episodes: int,
    seed_start: int = EVAL_SEED_START,
    workers: int = 2,
    sim_backend: str = "cpu",
    temperature: float = 0.0,
    gripper_temperature: float | None = None,
    window: int | None = None,
    greedy_prefix: bool = False,
    instruction: str | None = None,
    videos: int = 0,
    video_dir: Path | None = None,
    seed: int = 0,
    env_groups: int = 2,
    on_episode: Callable[[EpisodeRecord], None] | None = None,
) -> EvalSummary:
    """Closed-loop episodes on seeds seed_start, seed_start+1, ...; CPU workers are split into `env_groups`
    groups that take turns, so the policy acts for one group while the others step (1: all in lockstep)."""
    instruction = instruction or spec.instruction
    temperatures = action_temperature(temperature, gripper_temperature, policy.model.config.action_dim)
    sampled = any(per_dimension(temperatures, policy.model.config.action_dim))  # raises on bad values
    check_window(window)
    generator = torch.Generator(device=policy.device).manual_seed(seed) if sampled else None

    def act(images, proprio) -> np.ndarray:
        return policy.act(images, instruction, proprio, temperature=temperatures, generator=generator, window=window,
                          greedy_prefix=greedy_prefix)

    seeds = list(range(seed_start, seed_start + episodes))
    num_envs = min(workers, episodes)
    gpu = sim_backend in GPU_SIM_BACKENDS
    sizes = [num_envs] if gpu else split_workers(num_envs, env_groups)
    envs, names = [], None
    try:
        for size in sizes:
            env, names = make_eval_env(spec, size, sim_backend)
            envs.append(env)
        if gpu:
            records, stats = run_waves(envs[0], spec, act, seeds, video_episodes=videos, on_episode=on_episode)
        else:
            records, stats = run_async(envs, spec, act, seeds, video_episodes=videos, on_episode=on_episode)
    finally:
        for env in envs:
            env.close()
    video_files = []
    if videos and video_dir is not None:
        for rec in records[:videos]:
            path = Path(video_dir) / f"{spec.env_id}_seed{rec.seed}_{'success' if rec.success else 'fail'}.mp4"
            write_video(rec.frames, path, fps=spec.control_freq)
            video_files.append(str(path))
    return summarize(spec.env_id, records, stage_completion(names, records), extra={
        "instruction": instruction,
        "temperature": temperature,
        "gripper_temperature": gripper_temperature,
        "window": window,
        "greedy_prefix": greedy_prefix,
        "sim_backend": sim_backend,
        "workers": num_envs,
        "env_groups": len(sizes),
        "stages": list(names) if names else [],
        "env_steps": stats.env_steps,
        "seconds": round(stats.seconds, 3),
        "steps_per_second": round(stats.env_steps / stats.seconds, 3) if stats.seconds else None,
        "policy_seconds": round(stats.policy_seconds, 3),
        "videos": video_files,
    })
