"""STARE's episode dataset: a directory with `dataset.json` and one compressed `.npz` per episode.

The format is documented in docs/data-format.md. Datasets are written to a temporary sibling directory
and renamed into place on commit, so an interrupted run never leaves a half-written dataset behind.
Loading never unpickles (`allow_pickle=False`).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np

from sim_training.tasks import TaskSpec

FORMAT_NAME = "stare-dataset"
FORMAT_VERSION = 1
INDEX_FILE = "dataset.json"

POLICY_KEYS = ("image", "qpos", "tcp_pose", "action")
"""Per-step arrays every episode has; privileged arrays are prefixed `priv.`, env flags `flag.`."""


class DatasetError(RuntimeError):
    """A dataset directory is missing, malformed, or of another format version."""


@dataclass
class Episode:
    """One episode's per-step arrays (length T) and its metadata."""

    arrays: dict[str, np.ndarray]
    seed: int
    instruction: str
    success: bool
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.arrays["action"])

    def validate(self) -> None:
        missing = [key for key in POLICY_KEYS if key not in self.arrays]
        if missing:
            raise DatasetError(f"episode (seed {self.seed}) lacks arrays {missing}")
        lengths = {k: len(v) for k, v in self.arrays.items() if k != "initial_state"}
        if len(set(lengths.values())) != 1:
            raise DatasetError(f"episode (seed {self.seed}) has arrays of different lengths: {lengths}")


def action_statistics(actions: np.ndarray) -> dict[str, list[float]]:
    """Per-dimension statistics of all actions; q01/q99 bound the tokenizer's normalisation."""
    actions = np.asarray(actions, dtype=np.float64)
    return {
        "q01": np.quantile(actions, 0.01, axis=0).tolist(),
        "q99": np.quantile(actions, 0.99, axis=0).tolist(),
        "mean": actions.mean(axis=0).tolist(),
        "std": actions.std(axis=0).tolist(),
        "min": actions.min(axis=0).tolist(),
        "max": actions.max(axis=0).tolist(),
        "count": int(len(actions)),
    }


class DatasetWriter:
    """Collects episodes into a temporary directory; `commit()` writes the index and moves it in place."""

    def __init__(self, out: str | Path, spec: TaskSpec, *, overwrite: bool = False, source: dict | None = None):
        self.out = Path(out)
        self.spec = spec
        self.source = source or {}
        self.overwrite = overwrite
        if self.out.exists() and not overwrite:
            raise FileExistsError(f"output directory {self.out} already exists (pass --overwrite to replace it)")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self._tmp = Path(tempfile.mkdtemp(prefix=f".{self.out.name}.tmp-", dir=self.out.parent))
        self._tmp.chmod(0o755)  # mkdtemp makes it private; the dataset should not be
        (self._tmp / "episodes").mkdir()
        self._entries: list[dict[str, Any]] = []
        self._actions: list[np.ndarray] = []

    def add(self, episode: Episode) -> dict[str, Any]:
        episode.validate()
        index = len(self._entries)
        rel = f"episodes/episode_{index:06d}.npz"
        np.savez_compressed(self._tmp / rel, **episode.arrays)
        entry = {
            "index": index,
            "file": rel,
            "seed": int(episode.seed),
            "length": len(episode),
            "success": bool(episode.success),
            "instruction": episode.instruction,
            **episode.extra,
        }
        self._entries.append(entry)
        self._actions.append(np.asarray(episode.arrays["action"]))
        return entry

    def __len__(self) -> int:
        return len(self._entries)

    def commit(self) -> Path:
        if not self._entries:
            raise DatasetError("refusing to write a dataset with no episodes")
        index = {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "task": self.spec.to_dict(),
            "source": self.source,
            "action_stats": action_statistics(np.concatenate(self._actions)),
            "episodes": self._entries,
        }
        (self._tmp / INDEX_FILE).write_text(json.dumps(index, indent=1))
        if self.out.exists():
            old = self.out.with_name(f".{self.out.name}.old-{os.getpid()}")
            self.out.rename(old)
            self._tmp.rename(self.out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            self._tmp.rename(self.out)
        return self.out

    def abort(self) -> None:
        shutil.rmtree(self._tmp, ignore_errors=True)

    def __enter__(self) -> "DatasetWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.abort()


class Dataset:
    """A dataset on disk: its index in memory, episodes loaded on demand."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        index_path = self.root / INDEX_FILE
        if not index_path.is_file():
            raise DatasetError(f"{self.root} is not a STARE dataset (no {INDEX_FILE})")
        try:
            index = json.loads(index_path.read_text())
        except json.JSONDecodeError as err:
            raise DatasetError(f"{index_path} is not valid JSON: {err}") from None
        if index.get("format") != FORMAT_NAME or index.get("version") != FORMAT_VERSION:
            raise DatasetError(
                f"{index_path}: format {index.get('format')!r} v{index.get('version')} is not "
                f"{FORMAT_NAME!r} v{FORMAT_VERSION}"
            )
        self.index = index
        self.spec = TaskSpec.from_dict(index["task"])
        self.action_stats: dict[str, list[float]] = index["action_stats"]
        self.entries: list[dict[str, Any]] = index["episodes"]

    def __len__(self) -> int:
        return len(self.entries)

    def episode(self, i: int) -> Episode:
        entry = self.entries[i]
        path = self.root / entry["file"]
        if not path.resolve().is_relative_to(self.root.resolve()):  # an index is data: it names no file elsewhere
            raise DatasetError(f"{self.root / INDEX_FILE}: episode {i} file {entry['file']!r} is outside the dataset")
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
        except (OSError, ValueError) as err:
            raise DatasetError(f"cannot read episode file {path}: {err}") from None
        known = {"index", "file", "seed", "length", "success", "instruction"}
        return Episode(
            arrays=arrays,
            seed=entry["seed"],
            instruction=entry["instruction"],
            success=entry["success"],
            extra={k: v for k, v in entry.items() if k not in known},
        )

    def __iter__(self) -> Iterator[Episode]:
        return (self.episode(i) for i in range(len(self)))
