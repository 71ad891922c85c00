"""Episodes -> a LeRobot dataset, format v3.0 (the layout `lerobot`'s `LeRobotDataset` reads):

    meta/info.json                               schema (features, dtypes, shapes), fps, path templates, totals
    meta/stats.json                              per-feature min/max/mean/std/count and quantiles
    meta/tasks.parquet                           task (the instruction) -> task_index
    meta/episodes/chunk-000/file-000.parquet     one row per episode: length, tasks, row range in the data
                                                 files, time range in each video file, per-episode stats
    data/chunk-000/file-000.parquet              one row per frame, many episodes per file
    videos/observation.images.<camera>/chunk-000/file-000.mp4   the frames of many episodes, one after another

Frame t of an episode is step t of the STARE episode: the observation before action t, the action, and
STARE's extra columns `stage_index` (StARe stage of the observation, -1 unknown) and `stage` (its name).
Per-episode extras in the episodes table: outcome, success, truncated, seed, bag."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from sim_training.bags.config import ROBOT_JOINTS
from sim_training.bags.video import VideoWriter
from sim_training.data import Episode
from sim_training.tasks import TaskSpec, get_task

CODEBASE_VERSION = "v3.0"
CHUNKS_SIZE = 1000
"""Files per chunk directory."""
DATA_PATH = "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
VIDEO_PATH = "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
EPISODES_PATH = "meta/episodes/chunk-000/file-000.parquet"
QUANTILES = (0.01, 0.10, 0.50, 0.90, 0.99)
ACTION_NAMES = ["dx", "dy", "dz", "droll", "dpitch", "dyaw", "gripper"]
POSE_NAMES = ["x", "y", "z", "qw", "qx", "qy", "qz"]


@dataclass(frozen=True)
class LeRobotExportConfig:
    """How episodes are written as a LeRobot v3 dataset."""

    fps: int = 0
    """Frames per second; 0: the task's control frequency (one frame per control step)."""
    vcodec: str = "libx264"
    """ffmpeg video encoder: 'libx264' (H.264, decoded everywhere) or 'libsvtav1' (AV1, LeRobot's default)."""
    crf: int = 18
    """Constant rate factor of the encoder: lower is closer to the recorded frames, and larger."""
    gop: int = 2
    """Frames between key frames."""
    video_files_size_in_mb: int = 500
    """A video file (and the data file beside it) is closed and the next begun past this size."""
    robot_type: str = ""
    """info.json's robot_type; empty: the task's robot."""


def _vector_feature(width: int, names: list[str]) -> dict:
    return {"dtype": "float32", "shape": [width], "names": names}


def _features(spec: TaskSpec, goal_key: str | None, video_key: str, fps: int, config: LeRobotExportConfig,
              joint_names: list[str]) -> dict:
    cam = spec.camera
    codec = {"libx264": "h264", "libsvtav1": "av1"}.get(config.vcodec, config.vcodec)
    features = {
        video_key: {"dtype": "video", "shape": [cam.height, cam.width, 3], "names": ["height", "width", "channels"],
                    "info": {"video.height": cam.height, "video.width": cam.width, "video.codec": codec,
                             "video.pix_fmt": "yuv420p", "video.is_depth_map": False, "video.fps": fps,
                             "video.channels": 3, "has_audio": False}},
        "observation.state": _vector_feature(len(joint_names), joint_names),
        "observation.tcp_pose": _vector_feature(7, POSE_NAMES),
    }
    if goal_key:
        features[f"observation.{goal_key}"] = _vector_feature(3, ["x", "y", "z"])
    features.update({
        "action": _vector_feature(7, ACTION_NAMES),
        "stage_index": {"dtype": "int64", "shape": [1], "names": None},
        "stage": {"dtype": "string", "shape": [1], "names": None},
        "next.done": {"dtype": "bool", "shape": [1], "names": None},
        "next.success": {"dtype": "bool", "shape": [1], "names": None},
        "timestamp": {"dtype": "float32", "shape": [1], "names": None},
        "frame_index": {"dtype": "int64", "shape": [1], "names": None},
        "episode_index": {"dtype": "int64", "shape": [1], "names": None},
        "index": {"dtype": "int64", "shape": [1], "names": None},
        "task_index": {"dtype": "int64", "shape": [1], "names": None},
    })
    return features


def _stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """Statistics over axis 0 (frames); images arrive as (N, 3, pixels) in [0, 1] and keep (3, 1, 1)."""
    values = np.asarray(values, np.float64)
    if values.ndim == 1:
        values = values[:, None]  # scalar features have shape (1,)
    axes = (0, 2) if values.ndim == 3 else 0
    stats = {"min": values.min(axes), "max": values.max(axes), "mean": values.mean(axes), "std": values.std(axes),
             "count": np.array([len(values)])}
    flat = values.transpose(1, 0, 2).reshape(values.shape[1], -1).T if values.ndim == 3 else values
    for q in QUANTILES:
        stats[f"q{round(q * 100):02d}"] = np.quantile(flat, q, axis=0)
    if values.ndim == 3:
        stats = {k: (v.reshape(3, 1, 1) if k != "count" else v) for k, v in stats.items()}
    return stats


def _image_sample(images: np.ndarray, max_frames: int = 100, stride: int = 4) -> np.ndarray:
    """(N, 3, pixels) in [0, 1] of evenly spaced frames, every `stride`-th pixel: image statistics
    are for normalisation and need no more."""
    frames = images[np.linspace(0, len(images) - 1, min(len(images), max_frames)).astype(int)]
    return (frames[:, ::stride, ::stride].reshape(len(frames), -1, 3).transpose(0, 2, 1) / 255.0)


def _column(values: np.ndarray, dtype: pa.DataType) -> pa.Array:
    values = np.asarray(values)
    if values.ndim == 1:
        return pa.array(values, type=dtype)
    return pa.FixedSizeListArray.from_arrays(pa.array(values.reshape(-1), type=dtype), values.shape[1])


def _tasks_table(tasks: list[str]) -> pa.Table:
    """tasks.parquet as pandas writes a DataFrame indexed by task (LeRobot reads it with pandas)."""
    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()), "task": pa.array(tasks, pa.string())})
    pandas_meta = {"index_columns": ["task"], "column_indexes": [{"name": None, "field_name": None,
                   "pandas_type": "unicode", "numpy_type": "object", "metadata": {"encoding": "UTF-8"}}],
                   "columns": [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
                                "numpy_type": "int64", "metadata": None},
                               {"name": "task", "field_name": "task", "pandas_type": "unicode",
                                "numpy_type": "object", "metadata": None}],
                   "creator": {"library": "pyarrow", "version": pa.__version__}, "pandas_version": "2.2.3"}
    return table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})


class _Writer:
    """The data file and video file being filled; both roll over together."""

    def __init__(self, root: Path, video_key: str, spec: TaskSpec, fps: int, config: LeRobotExportConfig):
        self.root, self.video_key, self.spec, self.fps, self.config = root, video_key, spec, fps, config
        self.number, self.video, self.tables = -1, None, []
        self._next()

    @property
    def indices(self) -> tuple[int, int]:
        return divmod(self.number, CHUNKS_SIZE)

    def _next(self) -> None:
        self.number += 1
        chunk, file = self.indices
        cam = self.spec.camera
        path = self.root / VIDEO_PATH.format(video_key=self.video_key, chunk_index=chunk, file_index=file)
        self.video = VideoWriter(path, cam.width, cam.height, self.fps, self.config.vcodec, self.config.crf,
                                 self.config.gop)
        self.tables = []

    def _flush(self) -> None:
        self.video.close()
        chunk, file = self.indices
        path = self.root / DATA_PATH.format(chunk_index=chunk, file_index=file)
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.concat_tables(self.tables), path)

    def add(self, table: pa.Table, images: np.ndarray) -> dict:
        """Appends one episode; returns its file indices and its time range in the video."""
        if self.video.frames and self.video.size_mb() > self.config.video_files_size_in_mb:
            self._flush()
            self._next()
        start = self.video.frames / self.fps
        self.video.write(images)
        self.tables.append(table)
        chunk, file = self.indices
        return {"data/chunk_index": chunk, "data/file_index": file,
                f"videos/{self.video_key}/chunk_index": chunk, f"videos/{self.video_key}/file_index": file,
                f"videos/{self.video_key}/from_timestamp": start,
                f"videos/{self.video_key}/to_timestamp": self.video.frames / self.fps}

    def close(self) -> None:
        self._flush()


def _frame_values(episode: Episode, index: int, first: int, task_index: int, fps: int,
                  goal_key: str | None) -> dict[str, np.ndarray]:
    """Every non-video feature's per-frame values (the `stage` names aside)."""
    a, n = episode.arrays, len(episode)
    done = np.zeros(n, bool)
    done[-1] = True
    values = {"observation.state": a["qpos"].astype(np.float32), "observation.tcp_pose": a["tcp_pose"],
              "action": a["action"].astype(np.float32), "stage_index": a.get("stage", np.full(n, -1)).astype(np.int64),
              "next.done": done, "next.success": a.get("flag.success", np.zeros(n, bool)).astype(bool),
              "timestamp": (np.arange(n) / fps).astype(np.float32), "frame_index": np.arange(n),
              "episode_index": np.full(n, index), "index": np.arange(first, first + n),
              "task_index": np.full(n, task_index)}
    if goal_key:
        values[f"observation.{goal_key}"] = a[goal_key].astype(np.float32)
    return values


def _frame_table(values: dict[str, np.ndarray], features: dict, stage_names: list[str]) -> pa.Table:
    data = {}
    for key, ft in features.items():
        if key == "stage":
            data[key] = pa.array([stage_names[s] if 0 <= s < len(stage_names) else "unknown"
                                  for s in values["stage_index"]], pa.string())
        elif ft["dtype"] != "video":
            data[key] = _column(values[key], pa.from_numpy_dtype(np.dtype(ft["dtype"])))
    return pa.table(data)


def _episode_row(episode: Episode, index: int, first: int, location: dict, stats: dict) -> dict:
    extra = episode.extra
    return {"episode_index": index, "tasks": [episode.instruction], "length": len(episode),
            "dataset_from_index": first, "dataset_to_index": first + len(episode), **location,
            "meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0,
            "outcome": str(extra.get("outcome", "success" if episode.success else "unknown")),
            "success": bool(episode.success), "truncated": bool(extra.get("truncated", False)),
            "seed": int(episode.seed), "bag": str(extra.get("bag", "")),
            **{f"stats/{key}/{name}": v.tolist() for key, st in stats.items() for name, v in st.items()}}


def export_lerobot(episodes: Iterable[Episode], out: str | Path, *, config: LeRobotExportConfig | None = None,
                   overwrite: bool = False) -> Path:
    """Write the episodes (all of one camera and rate) as a LeRobot v3 dataset at `out`; built in a temporary
    sibling directory and renamed into place, so an interrupted export leaves nothing half-written."""
    config, out = config or LeRobotExportConfig(), Path(out)
    episodes = list(episodes)
    if not episodes:
        raise ValueError("no episodes to export")
    specs = [get_task(e.extra.get("task") or "") for e in episodes]
    spec = specs[0]
    if len({(s.camera.name, s.camera.width, s.camera.height, s.control_freq) for s in specs}) > 1:
        raise ValueError(f"episodes of tasks with different cameras or rates ({sorted({s.env_id for s in specs})}): "
                         "export them separately")
    if out.exists() and not overwrite:
        raise FileExistsError(f"output directory {out} already exists (pass --overwrite to replace it)")
    fps = config.fps or spec.control_freq
    goal_keys = {k for s in specs for k in s.goal_inputs}
    goal_key = next(iter(goal_keys)) if len(goal_keys) == 1 else None
    if goal_key and not all(goal_key in e.arrays for e in episodes):
        goal_key = None  # a bag without the goal topic
    width = episodes[0].arrays["qpos"].shape[1]
    joint_names = list(ROBOT_JOINTS.get(spec.robot, [f"joint{i}" for i in range(width)]))
    video_key = f"observation.images.{spec.camera.name}"
    features = _features(spec, goal_key, video_key, fps, config, joint_names)

    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    tmp.chmod(0o755)
    try:
        tasks, rows, frames = [], [], 0
        columns: dict[str, list[np.ndarray]] = {}
        writer = _Writer(tmp, video_key, spec, fps, config)
        for index, (episode, ep_spec) in enumerate(zip(episodes, specs)):
            if episode.instruction not in tasks:
                tasks.append(episode.instruction)
            values = _frame_values(episode, index, frames, tasks.index(episode.instruction), fps, goal_key)
            images = episode.arrays["image"]
            location = writer.add(_frame_table(values, features, list(ep_spec.stages.names) if ep_spec.stages else []),
                                  images)
            stats = {key: _stats(v) for key, v in values.items()}
            stats[video_key] = _stats(_image_sample(images))
            rows.append(_episode_row(episode, index, frames, location, stats))
            for key, v in values.items():
                columns.setdefault(key, []).append(v)
            columns.setdefault(video_key, []).append(_image_sample(images, max_frames=20))
            frames += len(episode)
        writer.close()
        (tmp / "meta/episodes/chunk-000").mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows), tmp / EPISODES_PATH)
        pq.write_table(_tasks_table(tasks), tmp / "meta/tasks.parquet")
        stats = {key: {s: v.tolist() for s, v in _stats(np.concatenate(vs)).items()} for key, vs in columns.items()}
        (tmp / "meta/stats.json").write_text(json.dumps(stats, indent=1))
        info = {"codebase_version": CODEBASE_VERSION, "robot_type": config.robot_type or spec.robot,
                "total_episodes": len(episodes), "total_frames": frames, "total_tasks": len(tasks),
                "chunks_size": CHUNKS_SIZE, "data_files_size_in_mb": 100,
                "video_files_size_in_mb": config.video_files_size_in_mb, "fps": fps,
                "splits": {"train": f"0:{len(episodes)}"}, "data_path": DATA_PATH, "video_path": VIDEO_PATH,
                "features": features}
        (tmp / "meta/info.json").write_text(json.dumps(info, indent=4))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
        tmp.rename(out)
        shutil.rmtree(old, ignore_errors=True)
    else:
        tmp.rename(out)
    return out
