"""A labelled episode (one stage index per step) and how two labellings of the same episode compare."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

UNKNOWN = -1
"""Label of steps whose inputs were unusable (NaN joints, wrong joint count): no stage claimed."""


@dataclass
class Segmentation:
    names: tuple[str, ...]
    """Stage names, index k is label k."""
    labels: np.ndarray
    """(T,) stage index per step; UNKNOWN where the separator could not tell."""
    events: list[tuple[int, str]] = field(default_factory=list)
    """(step, name) of notable events: regressions (object dropped, grasp lost), releases, bad input."""

    def __len__(self) -> int:
        return len(self.labels)

    def entries(self) -> list[int | None]:
        """First step of each stage (None for stages never entered)."""
        out = []
        for k in range(len(self.names)):
            hits = np.flatnonzero(self.labels == k)
            out.append(int(hits[0]) if len(hits) else None)
        return out

    @property
    def furthest(self) -> int:
        """Index of the last stage the episode reached (UNKNOWN if none)."""
        return int(self.labels.max()) if len(self.labels) else UNKNOWN

    def fractions(self) -> dict[str, float]:
        """Fraction of the episode's steps spent in each stage."""
        n = max(len(self.labels), 1)
        return {name: float((self.labels == k).sum() / n) for k, name in enumerate(self.names)}


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    """Fraction of steps with equal labels."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape:
        raise ValueError(f"labellings of different lengths: {a.shape} vs {b.shape}")
    return float((a == b).mean()) if len(a) else 1.0


def transition_errors(a: Segmentation, b: Segmentation) -> tuple[list[int], int]:
    """|step difference| of each stage entry found in both labellings (the first stage excluded), and the
    number of stage entries found in only one of them."""
    errors, unmatched = [], 0
    for ta, tb in list(zip(a.entries(), b.entries()))[1:]:
        if ta is not None and tb is not None:
            errors.append(abs(ta - tb))
        elif (ta is None) != (tb is None):
            unmatched += 1
    return errors, unmatched
