"""Frames for supervised learning: idle-step detection and the episode-level validation split."""

import numpy as np

from sim_training.tasks import TASKS
from sim_training.train.frames import Frames


def _frames(actions: np.ndarray, episode: np.ndarray, task_index=None) -> Frames:
    n = len(actions)
    return Frames(images=np.zeros((n, 4, 4, 3), np.uint8), proprio={}, actions=actions.astype(np.float32),
                  task_index=np.zeros(n, int) if task_index is None else task_index,
                  instruction_index=np.zeros(n, int), episode=episode,
                  tasks=[TASKS["PickCube-v1"], TASKS["PushCube-v1"]], instructions=["x"], sources=[])


def test_idle_frames_are_still_arm_commands_with_an_unchanged_gripper():
    stats = {"q01": [-0.2] * 6 + [-1.0], "q99": [0.2] * 6 + [1.0]}  # 0.05 of half the range = 0.01
    a = np.zeros((7, 7))
    a[:, 6] = [1, 1, 1, -1, -1, -1, 1]
    a[2, 0] = 0.1  # moving
    a[4, 2] = 0.008  # below the threshold
    a[5, 1] = 0.012  # above it
    episode = np.array([0, 0, 0, 0, 0, 0, 1])
    idle = _frames(a, episode).idle(0.05, stats)
    # 0, 1: still, open; 2: moving; 3: the gripper closes; 4: still, closed; 5: moving; 6: a new episode, open.
    assert idle.tolist() == [True, True, False, False, True, False, True]


def test_split_holds_out_whole_episodes_of_every_task():
    episode = np.repeat(np.arange(10), 5)
    task_index = (episode >= 6).astype(int)
    frames = _frames(np.zeros((50, 7)), episode, task_index)
    train, val = frames.split(0.2, seed=0)
    assert len(np.intersect1d(frames.episode[train], frames.episode[val])) == 0
    assert set(frames.task_index[val]) == {0, 1}
    assert len(train) + len(val) == 50
    again = frames.split(0.2, seed=0)
    assert np.array_equal(again[1], val)


def test_soft_targets_are_one_hot_at_zero_width_and_gaussian_otherwise():
    import torch

    from sim_training.train.sft import soft_targets

    bins = torch.tensor([[0, 128, 255]])
    assert torch.equal(soft_targets(bins, 256, 0.0), torch.nn.functional.one_hot(bins, 256).float())
    soft = soft_targets(bins, 256, 3.0)
    assert torch.allclose(soft.sum(-1), torch.ones(1, 3))
    assert soft[0, 1].argmax() == 128 and soft[0, 1, 125] == soft[0, 1, 131]
    assert soft[0, 0].argmax() == 0 and soft[0, 2].argmax() == 255  # truncated at the ends, renormalised


def test_goal_inputs_join_proprio_and_are_zero_filled_for_tasks_without_them(tmp_path):
    import pytest

    from sim_training.data import DatasetError, DatasetWriter, Episode
    from sim_training.train.frames import load_frames, with_goal_inputs
    from stare_policy.model.config import VLAConfig

    def write(name, task, with_goal):
        n = 3
        arrays = {"image": np.zeros((n, 8, 8, 3), np.uint8), "qpos": np.ones((n, 9), np.float32),
                  "tcp_pose": np.ones((n, 7), np.float32), "action": np.zeros((n, 7), np.float32)}
        if with_goal:
            arrays["goal_pos"] = np.full((n, 3), 0.5, np.float32)
        with DatasetWriter(tmp_path / name, TASKS[task], source={"kind": "test"}) as writer:
            writer.add(Episode(arrays=arrays, seed=0, instruction=TASKS[task].instruction, success=True))
            writer.commit()
        return tmp_path / name

    pick, push = write("pick", "PickCube-v1", True), write("push", "PushCube-v1", False)
    model = with_goal_inputs(VLAConfig(), [push, pick])
    assert model.proprio_keys == ("qpos", "tcp_pose", "goal_pos") and model.proprio_dims == (9, 7, 3)
    frames = load_frames([pick, push], model.proprio_keys, model.proprio_dims)
    assert frames.proprio["goal_pos"].tolist() == [[0.5] * 3] * 3 + [[0.0] * 3] * 3
    # A task that states a goal must have recorded it.
    no_goal = write("pick-without-goal", "PickCube-v1", False)
    with pytest.raises(DatasetError, match="goal_pos"):
        load_frames([no_goal], model.proprio_keys, model.proprio_dims)
