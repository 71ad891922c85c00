"""OpenVLA-style action tokenisation: continuous 7-D actions <-> 7 discrete tokens.

Each dimension is normalised to [-1, 1] with the dataset's 1st/99th percentiles and clipped (gripper
dimensions are already in [-1, 1] and stay unnormalised), cut into `n_bins` uniform bins, and bin b maps
to token id `token_offset + b`: the last `n_bins` ids of the language model's vocabulary. Decoding takes a
bin's centre, so a round trip is exact to half a bin width (in normalised units).
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


class MissingStatisticsError(ValueError):
    """The action normalisation statistics (q01/q99) are absent or malformed."""


class ActionTokenizer:
    def __init__(
        self,
        q01: Sequence[float],
        q99: Sequence[float],
        *,
        n_bins: int = 256,
        gripper_dims: Sequence[int] = (6,),
        token_offset: int = 0,
    ):
        self.q01 = np.asarray(q01, dtype=np.float64)
        self.q99 = np.asarray(q99, dtype=np.float64)
        if self.q01.shape != self.q99.shape or self.q01.ndim != 1:
            raise MissingStatisticsError(f"q01 {self.q01.shape} and q99 {self.q99.shape} must be equal 1-D shapes")
        if not (np.all(np.isfinite(self.q01)) and np.all(np.isfinite(self.q99))):
            raise MissingStatisticsError("action statistics q01/q99 contain non-finite values")
        if np.any(self.q99 < self.q01):
            raise MissingStatisticsError("action statistics have q99 < q01")
        self.n_bins = int(n_bins)
        self.token_offset = int(token_offset)
        self.normalised = np.ones(self.action_dim, dtype=bool)
        self.normalised[list(gripper_dims)] = False
        self.bin_width = 2.0 / self.n_bins

    @property
    def action_dim(self) -> int:
        return len(self.q01)

    @classmethod
    def from_stats(cls, stats: dict[str, Any] | None, **kwargs: Any) -> "ActionTokenizer":
        """From a dataset's or checkpoint's `action_stats` (needs `q01` and `q99`)."""
        missing = [key for key in ("q01", "q99") if not stats or key not in stats]
        if missing:
            raise MissingStatisticsError(f"action statistics lack {', '.join(missing)}")
        return cls(stats["q01"], stats["q99"], **kwargs)

    def stats(self) -> dict[str, list[float]]:
        return {"q01": self.q01.tolist(), "q99": self.q99.tolist()}

    def _check(self, actions: np.ndarray) -> np.ndarray:
        actions = np.asarray(actions, dtype=np.float64)
        if actions.shape[-1:] != (self.action_dim,):
            raise ValueError(f"actions must end in dimension {self.action_dim}, got shape {actions.shape}")
        return actions

    def normalise(self, actions: np.ndarray) -> np.ndarray:
        """Actions -> [-1, 1] (clipped)."""
        actions = self._check(actions)
        span = np.maximum(self.q99 - self.q01, 1e-8)
        scaled = 2.0 * (actions - self.q01) / span - 1.0
        return np.clip(np.where(self.normalised, scaled, actions), -1.0, 1.0)

    def unnormalise(self, normed: np.ndarray) -> np.ndarray:
        normed = self._check(normed)
        scaled = 0.5 * (normed + 1.0) * (self.q99 - self.q01) + self.q01
        return np.where(self.normalised, scaled, normed)

    def to_bins(self, actions: np.ndarray) -> np.ndarray:
        """Actions (..., D) -> bin indices (..., D) in [0, n_bins)."""
        normed = self.normalise(actions)
        return np.clip(np.floor((normed + 1.0) / self.bin_width), 0, self.n_bins - 1).astype(np.int64)

    def from_bins(self, bins: np.ndarray) -> np.ndarray:
        """Bin indices -> actions at the bins' centres (float32)."""
        bins = np.asarray(bins)
        if bins.min(initial=0) < 0 or bins.max(initial=0) >= self.n_bins:
            raise ValueError(f"bin indices must lie in [0, {self.n_bins})")
        centres = -1.0 + (bins + 0.5) * self.bin_width
        return self.unnormalise(centres).astype(np.float32)

    def encode(self, actions: np.ndarray) -> np.ndarray:
        """Actions -> language-model token ids."""
        return self.to_bins(actions) + self.token_offset

    def decode(self, token_ids: np.ndarray) -> np.ndarray:
        """Token ids -> actions."""
        return self.from_bins(np.asarray(token_ids) - self.token_offset)
