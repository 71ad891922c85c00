"""Turns raw observations into model inputs and action bins into robot actions.

Everything that depends on data statistics or on the tokenizer lives here (LeRobot's "processor"): the
prompt template and its tokenisation, proprio normalisation (mean/std of the training data), image checks,
and the action tokenizer (q01/q99). The model itself sees only tensors.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
import torch

from stare_policy.model.action_tokenizer import ActionTokenizer, MissingStatisticsError
from stare_policy.model.config import VLAConfig
from stare_policy.model.vla import VLAInputs

ROBOT_STATE_KEYS = ("qpos", "tcp_pose")
"""Proprioceptive inputs that describe the robot itself; every other proprio key is a task's goal input."""


def _numpy(value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().numpy()
    return np.asarray(value, dtype=np.float32)


class PolicyInputError(ValueError):
    """An observation does not match what the policy was trained on (shape, dtype, keys)."""


class VLAProcessor:
    def __init__(
        self,
        config: VLAConfig,
        text_tokenizer: Any,
        action_tokenizer: ActionTokenizer,
        proprio_stats: Mapping[str, Sequence[float]] | None,
        image_hw: tuple[int, int],
    ):
        self.config = config
        self.text_tokenizer = text_tokenizer
        self.action_tokenizer = action_tokenizer
        self.image_hw = tuple(image_hw)
        self.proprio_mean = self.proprio_std = None
        if config.proprio_dim:
            if not proprio_stats or "mean" not in proprio_stats or "std" not in proprio_stats:
                raise MissingStatisticsError(
                    "the model reads proprioception but proprio statistics (mean, std) are missing")
            mean, std = (np.asarray(proprio_stats[k], dtype=np.float32) for k in ("mean", "std"))
            if mean.shape != (config.proprio_dim,) or std.shape != (config.proprio_dim,):
                raise MissingStatisticsError(f"proprio statistics must have {config.proprio_dim} values each")
            self.proprio_mean, self.proprio_std = mean, np.maximum(std, 1e-6)
        self._prompt_cache: dict[str, list[int]] = {}

    def norm_stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = {"action": self.action_tokenizer.stats()}
        if self.proprio_mean is not None:
            stats["proprio"] = {"keys": list(self.config.proprio_keys), "mean": self.proprio_mean.tolist(),
                                "std": self.proprio_std.tolist()}
        return stats

    # -- inputs -----------------------------------------------------------------------------------------------
    def prompt_ids(self, instruction: str) -> list[int]:
        ids = self._prompt_cache.get(instruction)
        if ids is None:
            text = self.config.prompt.format(instruction=instruction.strip().rstrip(".?!").lower())
            ids = self._prompt_cache[instruction] = list(self.text_tokenizer(text)["input_ids"])
        return ids

    def check_images(self, images: Any) -> torch.Tensor:
        """(H, W, 3) or (B, H, W, 3) uint8 -> (B, H, W, 3) uint8 tensor, or PolicyInputError."""
        h, w = self.image_hw
        shape, dtype = tuple(getattr(images, "shape", ())), getattr(images, "dtype", type(images).__name__)
        ok_dtype = dtype in (np.uint8, torch.uint8)
        ok_shape = len(shape) in (3, 4) and shape[-3:] == (h, w, 3)
        if not (ok_dtype and ok_shape):
            raise PolicyInputError(
                f"image must be uint8 RGB of shape ({h}, {w}, 3) or (B, {h}, {w}, 3); got {dtype} {shape}"
            )
        images = torch.as_tensor(images)
        return images.unsqueeze(0) if images.ndim == 3 else images

    def proprio(self, proprio: Any, batch: int) -> torch.Tensor | None:
        """A (P,)/(B, P) array or a mapping of the config's proprio keys -> normalised (B, P) float32."""
        if not self.config.proprio_dim:
            return None
        if proprio is None:
            raise PolicyInputError(f"proprioception is required: {', '.join(self.config.proprio_keys)}")
        if isinstance(proprio, Mapping):
            missing = [k for k in self.config.proprio_keys if k not in proprio]
            if missing:
                raise PolicyInputError(f"proprioception lacks {', '.join(missing)}")
            parts = []
            for key, dim in zip(self.config.proprio_keys, self.config.proprio_dims):
                part = _numpy(proprio[key])
                if part.shape[-1:] != (dim,) or part.ndim > 2:
                    raise PolicyInputError(f"proprio {key!r} must have shape ({dim},) or (B, {dim}); got {part.shape}")
                parts.append(part.reshape(-1, dim))
            values = np.concatenate(parts, axis=-1)
        else:
            values = _numpy(proprio)
            dim = self.config.proprio_dim
            if values.shape[-1:] != (dim,) or values.ndim > 2:
                raise PolicyInputError(f"proprio must have shape ({dim},) or (B, {dim}); got {values.shape}")
            values = values.reshape(-1, dim)
        if len(values) != batch:
            raise PolicyInputError(f"{len(values)} proprio rows for {batch} images")
        if not np.all(np.isfinite(values)):
            raise PolicyInputError("proprio contains non-finite values")
        return torch.from_numpy((values - self.proprio_mean) / self.proprio_std)

    def __call__(self, images: Any, instructions: str | Sequence[str], proprio: Any = None) -> VLAInputs:
        images = self.check_images(images)
        batch = len(images)
        if isinstance(instructions, str):
            instructions = [instructions] * batch
        if len(instructions) != batch:
            raise PolicyInputError(f"{len(instructions)} instructions for {batch} images")
        ids = [self.prompt_ids(text) for text in instructions]
        width = max(map(len, ids))
        pad = self.text_tokenizer.pad_token_id
        prompt = torch.full((batch, width), pad, dtype=torch.long)
        mask = torch.zeros((batch, width), dtype=torch.bool)
        for row, seq in enumerate(ids):
            prompt[row, width - len(seq):] = torch.tensor(seq)
            mask[row, width - len(seq):] = True
        return VLAInputs(images, prompt, mask, self.proprio(proprio, batch))

    # -- outputs ----------------------------------------------------------------------------------------------
    def actions(self, bins: torch.Tensor) -> np.ndarray:
        """Bin indices (B, D) -> de-normalised actions (B, D) float32."""
        return self.action_tokenizer.from_bins(bins.cpu().numpy())

    def bins(self, actions: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(self.action_tokenizer.to_bins(actions))
