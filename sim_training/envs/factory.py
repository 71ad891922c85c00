"""Build ManiSkill3 environments from task specs: one env, a CPU process pool, or a GPU batch.

On CPU the simulator allows one env per process, so vector envs are `AsyncVectorEnv`s of single envs in
spawned (or forkserver) workers; the default fork context hangs. On a GPU, ManiSkill3 simulates many envs
in one process (`sim_backend="gpu"`, `num_envs=N`) and the same call returns a batched vector env.
"""

from __future__ import annotations

import functools
import os
from typing import Any, Callable

import gymnasium as gym

from sim_training.envs.assets import require_assets
from sim_training.envs.gpu_physics import GPU_SIM_BACKENDS, render_backend, require_gpu_simulation
from sim_training.envs.reveal import RevealActors
from sim_training.tasks import TaskSpec, get_task


def env_kwargs(spec: TaskSpec, **overrides: Any) -> dict[str, Any]:
    """The `gym.make` keyword arguments that realise a spec; keyword overrides win."""
    kwargs: dict[str, Any] = dict(
        obs_mode=spec.obs_mode,
        control_mode=spec.control_mode,
        max_episode_steps=spec.max_episode_steps,
        sensor_configs={spec.camera.name: spec.camera.sensor_config()},
        sim_backend="cpu",
    )
    if spec.accepts_robot_choice:
        kwargs["robot_uids"] = spec.robot
    kwargs.update(spec.env_kwargs)
    kwargs.update({key: value for key, value in overrides.items() if value is not None})
    kwargs.setdefault("render_backend", render_backend(kwargs["sim_backend"]))
    return kwargs


def make_env(task: str | TaskSpec, *, cpu_gym: bool = False, **overrides: Any) -> gym.Env:
    """One ManiSkill3 env for a task (batched torch observations unless `cpu_gym`, which gives numpy).

    Overrides are `gym.make` keywords (obs_mode, control_mode, num_envs, sim_backend, render_mode, ...).
    """
    spec = get_task(task)
    require_assets(spec)
    kwargs = env_kwargs(spec, **overrides)
    if kwargs["sim_backend"] in GPU_SIM_BACKENDS:
        require_gpu_simulation()
    if kwargs["render_backend"] == "cpu":
        # lavapipe rasterises a 128 x 128 camera in the stepping thread faster than it hands tiles to its
        # own threads, which only compete with the other simulator workers for the cores
        # (benchmarks/render_threads.py). An explicit LP_NUM_THREADS wins.
        os.environ.setdefault("LP_NUM_THREADS", "0")
    import mani_skill.envs  # noqa: F401  (registers the env ids)

    env = gym.make(spec.env_id, **kwargs)
    if spec.revealed_actors:
        env = RevealActors(env, spec.revealed_actors)
    if cpu_gym:
        from mani_skill.utils.wrappers.gymnasium import CPUGymWrapper

        env = CPUGymWrapper(env, ignore_terminations=True)
    return env


EnvWrapper = Callable[[gym.Env], gym.Env]


def _worker_env(task: TaskSpec, overrides: dict[str, Any], wrap: EnvWrapper | None = None) -> gym.Env:
    import torch

    torch.set_num_threads(1)
    env = make_env(task, cpu_gym=True, **overrides)
    return wrap(env) if wrap is not None else env


def make_vector_env(
    task: str | TaskSpec,
    num_envs: int,
    *,
    sim_backend: str = "cpu",
    context: str = "forkserver",
    wrap: EnvWrapper | None = None,
    **overrides: Any,
) -> gym.vector.VectorEnv:
    """`num_envs` envs of a task: CPU worker processes, or one batched GPU simulation.

    `wrap` (picklable, e.g. a `functools.partial`) wraps each worker's env, or the GPU batch before it is
    vectorised, so a wrapper such as the stage-shaped reward serves both paths.
    """
    spec = get_task(task)
    if num_envs <= 0:
        raise ValueError(f"num_envs must be positive, got {num_envs}")
    if sim_backend in GPU_SIM_BACKENDS:
        from mani_skill.vector.wrappers.gymnasium import ManiSkillVectorEnv

        env = make_env(spec, num_envs=num_envs, sim_backend="gpu", **overrides)
        if wrap is not None:
            env = wrap(env)
        return ManiSkillVectorEnv(env, num_envs, ignore_terminations=True, auto_reset=True)
    if context == "fork":
        raise ValueError("the fork start method hangs ManiSkill3 workers; use 'spawn' or 'forkserver'")
    require_assets(spec)
    fns = [functools.partial(_worker_env, spec, overrides, wrap) for _ in range(num_envs)]
    return gym.vector.AsyncVectorEnv(fns, context=context)
