"""Camera-free episodes for stage evaluation: expert demos replayed open-loop with Gaussian noise on the
arm actions. Noise makes trajectories wander, grasps slip and some episodes fail, which is the
material the separators must also label well (the issue's "noisy rollouts")."""

from __future__ import annotations

from typing import Iterable

import numpy as np

from sim_training.data import Episode
from sim_training.envs import make_env
from sim_training.envs.observation import privileged_state, success_flags
from sim_training.tasks import TaskSpec, get_task

STATE_OBS = "state_dict"
"""No cameras: recording runs at simulator speed."""


def replay(env, spec: TaskSpec, seed: int, actions: np.ndarray) -> dict[str, np.ndarray]:
    """Run `actions` from `reset(seed)`; per-step arrays named as in the dataset format, minus images."""
    env.reset(seed=seed)
    base = env.unwrapped
    steps = []
    for action in actions:
        record = {
            "qpos": base.agent.robot.get_qpos().cpu().numpy().reshape(-1).astype(np.float32),
            "action": np.asarray(action, np.float32),
            **{f"priv.{k}": v for k, v in privileged_state(env, spec).items()},
        }
        record["tcp_pose"] = record["priv.tcp_pose"]
        _, _, _, _, info = env.step(np.asarray(action, np.float32)[None])
        record.update({f"flag.{k}": v for k, v in success_flags(info, spec).items()})
        steps.append(record)
    return {key: np.stack([s[key] for s in steps]) for key in steps[0]}


def noisy_replays(task: str | TaskSpec, demos: Iterable[Episode], sigma: float, seed: int = 0) -> list[Episode]:
    """Each demo replayed once with N(0, sigma) added to its six arm action dims (clipped to [-1, 1])."""
    spec = get_task(task)
    rng = np.random.default_rng(seed)
    env = make_env(spec, obs_mode=STATE_OBS)
    try:
        out = []
        for demo in demos:
            actions = np.array(demo.arrays["action"], dtype=np.float64)
            actions[:, :6] = np.clip(actions[:, :6] + rng.normal(0.0, sigma, (len(actions), 6)), -1.0, 1.0)
            arrays = replay(env, spec, demo.seed, actions)
            out.append(Episode(arrays, demo.seed, demo.instruction, bool(arrays["flag.success"][-1]),
                               {"noise_sigma": sigma}))
        return out
    finally:
        env.close()
