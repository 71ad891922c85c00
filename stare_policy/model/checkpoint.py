"""Policy checkpoints: a directory that one call loads, with no pickle anywhere.

    <checkpoint>/
      config.json          format, VLAConfig, backbone config (small), input image size, the task specs
      model.safetensors    weights (small: all; large: LoRA adapters + trained modules, not the frozen base)
      norm_stats.json      action q01/q99 and proprio mean/std
      tokenizer/           the text tokenizer (tokenizer.json + tokenizer_config.json)

Writers build the directory beside the target and rename it into place (`atomic_directory`), so a kill
never leaves a half-written checkpoint; trainers may add their own files (optimizer state) to it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from stare_policy.model.action_tokenizer import ActionTokenizer, MissingStatisticsError
from stare_policy.model.backbone import build_small, load_large, small_llava_config
from stare_policy.model.config import VLAConfig
from stare_policy.model.processor import VLAProcessor
from stare_policy.model.text_tokenizer import load_text_tokenizer
from stare_policy.model.vla import VLA
from stare_policy.typed_config import ConfigError, from_dict, to_dict

FORMAT, VERSION = "stare-vla-checkpoint", 1
CONFIG_FILE, WEIGHTS_FILE = "config.json", "model.safetensors"
STATS_FILE, TOKENIZER_DIR = "norm_stats.json", "tokenizer"


class CheckpointError(RuntimeError):
    """A checkpoint directory is missing, incomplete, corrupt or of another format."""


@dataclass
class Checkpoint:
    model: VLA
    processor: VLAProcessor
    tasks: list[dict[str, Any]]
    """The task specs (as dicts) the policy was trained for."""
    meta: dict[str, Any]
    """The whole config.json."""


def build(
    config: VLAConfig,
    text_tokenizer: Any,
    action_stats: dict[str, Any],
    proprio_stats: dict[str, Any] | None,
    image_hw: tuple[int, int],
    backbone_config: dict[str, Any] | None = None,
) -> tuple[VLA, VLAProcessor]:
    """A freshly initialised model (small) or base + fresh adapters (large), and its processor.

    For 'large' the text tokenizer is the base checkpoint's, whatever is passed.
    """
    if config.size == "small":
        from transformers import LlavaConfig

        llava_config = (
            LlavaConfig.from_dict(backbone_config) if backbone_config
            else small_llava_config(config, len(text_tokenizer) + config.n_bins)
        )
        backbone = build_small(llava_config)
    else:
        backbone = load_large(config, config.n_bins)
        text_tokenizer = load_text_tokenizer(config.base_model_path)
    model = VLA(config, backbone)
    actions = ActionTokenizer.from_stats(
        action_stats, n_bins=config.n_bins, gripper_dims=config.gripper_dims, token_offset=model.action_offset
    )
    if actions.action_dim != config.action_dim:
        raise MissingStatisticsError(
            f"action statistics have {actions.action_dim} dimensions, the model {config.action_dim}")
    return model, VLAProcessor(config, text_tokenizer, actions, proprio_stats, image_hw)


def save(directory: str | Path, model: VLA, processor: VLAProcessor, tasks: list[dict[str, Any]], **extra: Any) -> None:
    """Write a checkpoint into `directory` (created; use inside `atomic_directory` for safety)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    core = model.module if hasattr(model, "module") and isinstance(model.module, VLA) else model
    state = {k: v.detach().contiguous().cpu() for k, v in core.state_dict().items() if k not in core.frozen_keys}
    save_file(state, str(directory / WEIGHTS_FILE), metadata={"format": FORMAT})
    (directory / STATS_FILE).write_text(json.dumps(processor.norm_stats(), indent=1))
    processor.text_tokenizer.save_pretrained(str(directory / TOKENIZER_DIR))
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "model": to_dict(core.config),
        "backbone": core.llava.config.to_dict() if core.config.size == "small" else None,
        "image_hw": list(processor.image_hw),
        "tasks": tasks,
        **extra,
    }
    (directory / CONFIG_FILE).write_text(json.dumps(meta, indent=1, default=str))


def _read_json(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise CheckpointError(f"{path.parent} is not a complete STARE checkpoint: {path.name} is missing")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path} is corrupt (not valid JSON: {err})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path} is corrupt (expected a JSON object)")
    return data


def load(path: str | Path, device: str | torch.device = "cpu") -> Checkpoint:
    """Load a checkpoint directory: model (eval mode, on `device`), processor, task specs."""
    path = Path(path)
    if not path.is_dir():
        raise CheckpointError(f"no checkpoint directory at {path}")
    meta = _read_json(path / CONFIG_FILE)
    if meta.get("format") != FORMAT or meta.get("version") != VERSION:
        raise CheckpointError(f"{path} is not a {FORMAT} v{VERSION} checkpoint (format {meta.get('format')!r})")
    try:
        config = from_dict(VLAConfig, meta["model"])
    except (ConfigError, KeyError) as err:
        raise CheckpointError(f"{path / CONFIG_FILE}: bad model config: {err}") from None
    stats = _read_json(path / STATS_FILE)
    if "action" not in stats:
        raise CheckpointError(f"{path / STATS_FILE} lacks the action statistics")
    try:
        tokenizer = load_text_tokenizer(path / TOKENIZER_DIR)
    except (OSError, ValueError) as err:
        raise CheckpointError(f"{path / TOKENIZER_DIR}: cannot load the tokenizer: {err}") from None
    try:
        model, processor = build(config, tokenizer, stats["action"], stats.get("proprio"), tuple(meta["image_hw"]),
                                 meta.get("backbone"))
    except MissingStatisticsError as err:
        raise CheckpointError(f"{path / STATS_FILE}: {err}") from None
    processor.text_tokenizer = tokenizer
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise CheckpointError(f"{path} is not a complete STARE checkpoint: {WEIGHTS_FILE} is missing")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError) as err:
        raise CheckpointError(f"{weights} is corrupt: {err}") from None
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as err:
        detail = str(err).splitlines()[-1].strip()
        raise CheckpointError(f"{weights} does not fit the model in config.json: {detail}") from None
    missing = sorted(set(missing) - model.frozen_keys)
    if missing or unexpected:
        raise CheckpointError(
            f"{weights} does not fit the model in config.json: {len(missing)} missing weights "
            f"{missing[:3]}, {len(unexpected)} unexpected {sorted(unexpected)[:3]}"
        )
    return Checkpoint(model.to(device).eval(), processor, list(meta.get("tasks", [])), meta)


def recover(path: str | Path) -> None:
    """Finish a swap that a kill interrupted between its two renames, and drop stale temporary
    directories of killed writers (see `atomic_directory`)."""
    path = Path(path)
    for stale in path.parent.glob(f".{path.name}.tmp-*"):
        shutil.rmtree(stale, ignore_errors=True)
    old = path.with_name(path.name + ".old")
    if old.exists() and not path.exists():
        old.rename(path)
    elif old.exists():
        shutil.rmtree(old, ignore_errors=True)


@contextlib.contextmanager
def atomic_directory(path: str | Path) -> Iterator[Path]:
    """Yield a temporary directory beside `path`; on success it replaces `path`, on error it vanishes."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    recover(path)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.tmp-", dir=path.parent))
    try:
        yield tmp
        tmp.chmod(0o755)
        old = path.with_name(path.name + ".old")
        if path.exists():
            os.rename(path, old)
        os.rename(tmp, path)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
