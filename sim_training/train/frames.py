"""Every step of one or more datasets in memory, as flat per-frame arrays for supervised learning.

Datasets may be of different tasks (multi-task training); they must share the camera size and action
dimension. The validation split holds out whole episodes (frames of one episode are near-duplicates).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from sim_training.data import Dataset, DatasetError, action_statistics
from sim_training.tasks import TASKS, TaskSpec
from stare_policy.model.config import VLAConfig
from stare_policy.model.processor import ROBOT_STATE_KEYS


@dataclass
class Frames:
    images: np.ndarray
    """(N, H, W, 3) uint8."""
    proprio: dict[str, np.ndarray]
    """Per key (N, d) float32, e.g. qpos and tcp_pose."""
    actions: np.ndarray
    """(N, 7) float32."""
    task_index: np.ndarray
    """(N,) index into `tasks`."""
    instruction_index: np.ndarray
    """(N,) index into `instructions`: the instruction the episode was recorded with."""
    episode: np.ndarray
    """(N,) global episode number."""
    tasks: list[TaskSpec]
    instructions: list[str]
    sources: list[str]

    def __len__(self) -> int:
        return len(self.actions)

    def proprio_stats(self, keys: Sequence[str], rows: np.ndarray) -> dict[str, list[float]]:
        values = np.concatenate([self.proprio[k][rows] for k in keys], axis=1).astype(np.float64)
        return {"mean": values.mean(0).tolist(), "std": values.std(0).tolist()}

    def action_stats(self, rows: np.ndarray) -> dict[str, list[float]]:
        return action_statistics(self.actions[rows])

    def idle(self, threshold: float, stats: dict[str, list[float]], gripper_dims: Sequence[int] = (6,)
             ) -> np.ndarray:
        """(N,) frames whose motion command is below `threshold` in every arm dimension (in the units of the
        q01/q99 normalisation, i.e. a fraction of half the data's range) and whose gripper command did not
        change from the episode's previous frame (or from open, at its first frame).

        Expert trajectories start and end every segment with near-zero commands (the planner's velocity
        ramps); at rest the robot's state cannot tell these apart, so a policy trained on them copies the
        zero command and stands still for ever. OpenVLA drops such no-op steps before fine-tuning too.
        """
        arm = [d for d in range(self.actions.shape[1]) if d not in gripper_dims]
        span = np.maximum(np.asarray(stats["q99"]) - np.asarray(stats["q01"]), 1e-8)[arm]
        still = (2 * np.abs(self.actions[:, arm]) / span).max(1) < threshold
        grip = self.actions[:, list(gripper_dims)]
        previous = np.vstack([np.ones_like(grip[:1]), grip[:-1]])
        previous[np.r_[True, self.episode[1:] != self.episode[:-1]]] = 1.0  # episodes start with an open hand
        return still & np.all(grip == previous, axis=1)

    def split(self, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Frame indices of training and validation episodes (at least one validation episode per task
        with two or more episodes)."""
        rng = np.random.default_rng(seed)
        val_episodes: list[int] = []
        for t in range(len(self.tasks)):
            episodes = np.unique(self.episode[self.task_index == t])
            if len(episodes) < 2 or val_fraction <= 0:
                continue
            n_val = min(len(episodes) - 1, max(1, round(val_fraction * len(episodes))))
            val_episodes.extend(rng.choice(episodes, n_val, replace=False).tolist())
        is_val = np.isin(self.episode, val_episodes)
        return np.flatnonzero(~is_val), np.flatnonzero(is_val)


def with_goal_inputs(model: VLAConfig, paths: Sequence[str | Path]) -> VLAConfig:
    """`model` with the datasets' task goal inputs (TaskSpec.goal_inputs, e.g. PickCube's goal position)
    appended to its proprioceptive keys, so the policy is told the goal its task states."""
    keys, dims = list(model.proprio_keys), list(model.proprio_dims)
    for path in paths:
        dataset = Dataset(path)
        for key in dataset.spec.goal_inputs:
            if key not in keys and len(dataset):
                keys.append(key)
                dims.append(int(dataset.episode(0).arrays[key].shape[-1]))
    return dataclasses.replace(model, proprio_keys=tuple(keys), proprio_dims=tuple(dims))


def check_camera(dataset: Dataset, path: str | Path) -> None:
    """Refuse data seen through another camera than the task's (TaskSpec.camera, what evaluation and
    deployment show the policy): a model trained on it would be evaluated on a view it never saw."""
    current = TASKS.get(dataset.spec.env_id)
    if current is not None and dataset.spec.camera != current.camera:
        raise DatasetError(
            f"{path}: recorded with camera {dataset.spec.camera} but {dataset.spec.env_id} now uses "
            f"{current.camera}; record the demonstrations again (stare-demos)")


def load_frames(paths: Sequence[str | Path], proprio_keys: Sequence[str],
                proprio_dims: Sequence[int] | None = None) -> Frames:
    """Read datasets into memory; raises DatasetError on mismatched or malformed data.

    In multi-task data, a goal input that an episode's task does not have (another task's goal position)
    is zero-filled (its size from `proprio_dims`)."""
    images, actions, task_index, instr_index, episode = [], [], [], [], []
    proprio: dict[str, list[np.ndarray]] = {k: [] for k in proprio_keys}
    tasks: list[TaskSpec] = []
    instructions: list[str] = []
    n_episodes = 0
    for path in paths:
        dataset = Dataset(path)
        check_camera(dataset, path)
        if dataset.spec not in tasks:
            tasks.append(dataset.spec)
        t = tasks.index(dataset.spec)
        dims = dict(zip(proprio_keys, proprio_dims or ()))
        for ep in dataset:
            # Another task's goal input; the robot's own state and this task's goal must be recorded.
            zero_filled = {k for k in proprio_keys if k not in ep.arrays and k in dims
                           and k not in dataset.spec.goal_inputs and k not in ROBOT_STATE_KEYS}
            missing = [k for k in proprio_keys if k not in ep.arrays and k not in zero_filled]
            if missing:
                raise DatasetError(f"{path}: episode (seed {ep.seed}) lacks proprio arrays {missing}")
            if ep.instruction not in instructions:
                instructions.append(ep.instruction)
            n = len(ep)
            images.append(ep.arrays["image"])
            actions.append(ep.arrays["action"].astype(np.float32))
            for k in proprio_keys:
                value = np.zeros((n, dims[k]), np.float32) if k in zero_filled else ep.arrays[k].astype(np.float32)
                proprio[k].append(value)
            task_index.append(np.full(n, t))
            instr_index.append(np.full(n, instructions.index(ep.instruction)))
            episode.append(np.full(n, n_episodes))
            n_episodes += 1
    if not images:
        raise DatasetError("no episodes in " + ", ".join(map(str, paths)))
    shapes = {im.shape[1:] for im in images}
    if len(shapes) > 1:
        raise DatasetError(f"datasets have different image shapes {sorted(shapes)}; train on one camera size")
    return Frames(
        images=np.concatenate(images),
        proprio={k: np.concatenate(v) for k, v in proprio.items()},
        actions=np.concatenate(actions),
        task_index=np.concatenate(task_index),
        instruction_index=np.concatenate(instr_index),
        episode=np.concatenate(episode),
        tasks=tasks,
        instructions=instructions,
        sources=[str(p) for p in paths],
    )
