"""What every runner of a multi-task policy gives it for goal inputs another task has."""

import numpy as np

from sim_training.envs.observation import fill_absent_goal_inputs
from sim_training.tasks import get_task

KEYS, DIMS = ("qpos", "tcp_pose", "goal_pos"), (9, 7, 3)


def test_other_tasks_goal_inputs_are_zero_filled_batched_and_single():
    push = get_task("PushCube-v1")
    batch = {"qpos": np.ones((2, 9), np.float32), "tcp_pose": np.ones((2, 7), np.float32)}
    filled = fill_absent_goal_inputs(batch, KEYS, DIMS, push)
    assert filled["goal_pos"].shape == (2, 3) and not filled["goal_pos"].any()
    single = fill_absent_goal_inputs({k: v[0] for k, v in batch.items()}, KEYS, DIMS, push)
    assert single["goal_pos"].shape == (3,)


def test_robot_state_and_the_tasks_own_goal_are_never_invented():
    pick = get_task("PickCube-v1")  # goal_pos is PickCube's own input: missing stays missing (an error later)
    assert "goal_pos" not in fill_absent_goal_inputs({"qpos": np.ones(9)}, KEYS, DIMS, pick)
    assert "tcp_pose" not in fill_absent_goal_inputs({"qpos": np.ones(9)}, KEYS, DIMS, get_task("PushCube-v1"))
