"""Read what the policy sees and what the stage separator may use out of a single env's step.

Policy inputs (available on a real robot): the policy camera's RGB image, joint positions (7 arm + 2
finger joints), the TCP pose, and the task's goal inputs (PickCube's goal position). Privileged state (simulation only): the poses of the task's tracked
actors, whether the grasp actor is held, and the env's success flags.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from sim_training.tasks import TaskSpec


def _first(value: Any) -> np.ndarray:
    """Numpy view of the first env of a batched tensor (or an unbatched array)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    value = np.asarray(value)
    return value[0] if value.ndim >= 1 and value.shape[0] == 1 else value


def policy_inputs(obs: dict, spec: TaskSpec) -> dict[str, np.ndarray]:
    return {
        "image": _first(obs["sensor_data"][spec.camera.name]["rgb"]).astype(np.uint8),
        "qpos": _first(obs["agent"]["qpos"]).astype(np.float32),
        "tcp_pose": _first(obs["extra"]["tcp_pose"]).astype(np.float32),
        **{key: _first(obs["extra"][key]).astype(np.float32) for key in spec.goal_inputs},
    }


def privileged_state(env, spec: TaskSpec, *, after_reset: bool = False) -> dict[str, np.ndarray]:
    """Poses (p xyz + q wxyz) of the TCP and the tracked actors, and `is_grasped` where a task has one.

    Right after a reset no physics step has run, so the simulator's contact forces (which `is_grasping`
    reads) still describe the previous episode; every task starts with an empty gripper, so
    `after_reset=True` reports `is_grasped` False instead of that stale answer.
    """
    base = env.unwrapped
    state = {"tcp_pose": _first(base.agent.tcp.pose.raw_pose).astype(np.float32)}
    for name in spec.tracked_actors:
        state[f"{name}_pose"] = _first(getattr(base, name).pose.raw_pose).astype(np.float32)
    if spec.grasp_actor is not None:
        grasped = False if after_reset else _first(base.agent.is_grasping(getattr(base, spec.grasp_actor)))
        state["is_grasped"] = np.asarray(grasped, bool)
    return state


def success_flags(info: dict, spec: TaskSpec) -> dict[str, np.ndarray]:
    return {name: np.asarray(_first(info[name]), bool) for name in spec.success_flags}
