"""Trainer state beside a checkpoint's weights, so a killed run resumes where its last checkpoint left off.

    <checkpoint>/trainer_state.json      algorithm, step, config, data, metrics, elapsed time
    <checkpoint>/optimizer.safetensors   optimizer moments, keyed "<param index>.<name>"

Safetensors + JSON only: nothing is unpickled on resume.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

STATE_FILE, OPTIMIZER_FILE = "trainer_state.json", "optimizer.safetensors"


class TrainStateError(RuntimeError):
    """A checkpoint's trainer state is missing or corrupt."""


def save_train_state(directory: str | Path, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    directory = Path(directory)
    opt = optimizer.state_dict()
    tensors, scalars = {}, {}
    for index, entry in opt["state"].items():
        for name, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{index}.{name}"] = value.detach().contiguous().cpu()
            else:
                scalars[f"{index}.{name}"] = value
    save_file(tensors, str(directory / OPTIMIZER_FILE))
    payload = {**state, "optimizer": {"param_groups": opt["param_groups"], "scalars": scalars}}
    (directory / STATE_FILE).write_text(json.dumps(payload, indent=1, default=str))


def read_train_state(directory: str | Path) -> dict[str, Any] | None:
    """The JSON state of a checkpoint, or None when it has none (e.g. a policy-only checkpoint)."""
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise TrainStateError(f"{path} is corrupt: {err}") from None


def load_optimizer(directory: str | Path, optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    path = Path(directory) / OPTIMIZER_FILE
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as err:
        raise TrainStateError(f"{path} is missing or corrupt: {err}") from None
    saved = state["optimizer"]
    per_param: dict[int, dict[str, Any]] = {}
    for key, value in [*tensors.items(), *saved["scalars"].items()]:
        index, name = key.split(".", 1)
        per_param.setdefault(int(index), {})[name] = value
    try:
        optimizer.load_state_dict({"state": per_param, "param_groups": saved["param_groups"]})
    except (ValueError, KeyError) as err:
        raise TrainStateError(f"{path} does not fit this model's optimizer: {err}") from None
