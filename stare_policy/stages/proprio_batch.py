"""Proprioceptive stage labels for many episodes at once, identical to running `ProprioSegmenter` on
every sample (tests hold the two to equality).

Stages are entered one at a time, so the whole labelling is K-1 scans: the entry of stage k is the first
sample after the entry of stage k-1 at which its event holds, given what stage k-1 remembered from its
own start. Each scan is vectorised over all episodes and samples (episodes padded to a common length),
so throughput does not depend on episode length; unusable samples are dropped before the scans and
labelled UNKNOWN, exactly as the online separator skips them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from stare_policy.stages.kinematics import ChainFK
from stare_policy.stages.proprioceptive import (
    EVENTS, N_ARM, N_FINGERS, READS_PEAK, READS_ROTATION, Reference, Sample, check_spec, holding_from,
)
from stare_policy.stages.segmentation import UNKNOWN, Segmentation
from stare_policy.stages.spec import TaskStages


def _check_shapes(qpos, gripper, times) -> list[int]:
    lengths = []
    for i, (q, g) in enumerate(zip(qpos, gripper, strict=True)):
        shape = np.shape(q)
        if len(shape) != 2 or shape[1] != N_ARM + N_FINGERS:
            raise ValueError(f"episode {i}: expected joint positions of shape (T, {N_ARM + N_FINGERS}) "
                             f"({N_ARM} arm + {N_FINGERS} finger joints), got {shape}")
        n_times = shape[0] if times is None else np.size(times[i])
        if np.size(g) != shape[0] or n_times != shape[0]:
            raise ValueError(f"episode {i}: {shape[0]} joint samples but {np.size(g)} gripper commands "
                             f"and {n_times} times")
        lengths.append(shape[0])
    return lengths


def segment_proprio_batch(
    spec: TaskStages,
    qpos: Sequence[np.ndarray],
    gripper: Sequence[np.ndarray],
    times: Sequence[np.ndarray] | None = None,
    *,
    fk: ChainFK | None = None,
    rate_hz: float = 20.0,
) -> list[Segmentation]:
    """Label episodes given per episode: joint positions (T, 9), gripper commands (T,) and sample times
    (T,) in seconds (default: index / rate_hz). Raises ValueError on wrongly shaped input."""
    check_spec(spec)
    fk = fk or ChainFK()
    th = spec.thresholds
    lengths = np.array(_check_shapes(qpos, gripper, times), dtype=np.int64)
    n_eps, total = len(lengths), int(lengths.sum())
    if n_eps == 0:
        return []
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    q = np.concatenate([np.asarray(v, dtype=np.float64) for v in qpos]) if total else np.zeros((0, 9))
    g = np.concatenate([np.asarray(v, dtype=np.float64).reshape(-1) for v in gripper])
    local = np.arange(total) - np.repeat(starts, lengths)
    t = local / rate_hz if times is None else np.concatenate([np.asarray(v, np.float64).reshape(-1) for v in times])
    valid = np.isfinite(q).all(1) & np.isfinite(g) & np.isfinite(t)
    kept = np.flatnonzero(valid)
    counts = np.concatenate([[0], np.cumsum(valid)])
    n = counts[starts + lengths] - counts[starts]
    first = counts[starts]

    width_cols = max(int(n.max()), 1)
    cols = np.arange(width_cols)[None, :]
    live = cols < n[:, None]
    # Episodes side by side, left-aligned over their usable samples, padded with their last one.
    at = np.clip(first[:, None] + np.minimum(cols, n[:, None] - 1), 0, max(len(kept) - 1, 0))
    turns = bool({stage.proprio_entry for stage in spec.stages[1:]} & READS_ROTATION)
    pos, rot = fk.batch(q[kept, :N_ARM], rotation=turns) if len(kept) else (np.zeros((1, 3)), None)
    x, y, z = pos[at, 0], pos[at, 1], pos[at, 2]
    rot = rot.reshape(-1, 9)[at] if rot is not None else np.broadcast_to(np.eye(3).reshape(9), at.shape + (9,))
    gather = kept[at] if len(kept) else np.zeros_like(at)
    width = q[gather, N_ARM] + q[gather, N_ARM + 1] if total else np.zeros(at.shape)
    command, t = (g[gather], t[gather]) if total else (np.zeros(at.shape), np.zeros(at.shape))

    old = np.maximum(np.arange(width_cols) - max(1, th.speed_window), 0)
    dist = np.sqrt((x - x[:, old]) ** 2 + (y - y[:, old]) ** 2 + (z - z[:, old]) ** 2)
    speed = dist / np.maximum(t - t[:, old], 1e-9)
    prev = np.maximum(np.arange(width_cols) - 1, 0)
    width_rate = (width - width[:, prev]) / np.maximum(t - t[:, prev], 1e-9)
    columns = [x, y, z, width, width_rate, command, speed, rot]

    rows = np.arange(n_eps)
    entries = np.full((len(spec), n_eps), width_cols)
    entries[0] = 0
    entered = np.zeros(n_eps, np.int64)
    ref = [x[:, 0], y[:, 0], z[:, 0], rot[:, 0]]
    scanning = n > 0
    for k, stage in enumerate(spec.stages[1:], start=1):
        lo = int(entered[scanning].min()) + 1 if scanning.any() else width_cols
        if lo >= width_cols:
            break
        f = Sample(*(v[:, lo:] for v in columns[:7]), rot=tuple(rot[:, lo:, j] for j in range(9)))
        after = cols[:, lo:] > entered[:, None]
        peak = None
        if stage.proprio_entry in READS_PEAK:  # max speed since the entry, before each sample
            since = np.where(after, f.speed, 0.0)
            peak = np.concatenate([np.zeros((n_eps, 1)), np.maximum.accumulate(since, axis=1)[:, :-1]], axis=1)
        r = Reference(*(v[:, None] for v in ref[:3]), peak=peak, rot=tuple(ref[3][:, None, j] for j in range(9)))
        hit = EVENTS[stage.proprio_entry](f, r, th, np) & after & live[:, lo:] & scanning[:, None]
        found, hit_at = hit.any(1), hit.argmax(1) + lo
        entries[k] = np.where(found, hit_at, width_cols)
        new = [x[rows, hit_at], y[rows, hit_at], z[rows, hit_at], rot[rows, hit_at]]
        ref = [np.where(found.reshape((-1,) + (1,) * (v.ndim - 1)), v, o) for v, o in zip(new, ref)]
        entered = np.where(found, hit_at, entered)
        scanning &= found
    labels = sum((cols >= entries[k][:, None]).astype(np.int64) for k in range(1, len(spec)))
    labels = labels if len(spec) > 1 else np.zeros(x.shape, np.int64)

    closed = command < th.close_command
    holding = labels >= holding_from(spec)
    lost = holding & closed & (width < th.hold_width_m)
    lost_onset = lost & ~np.concatenate([np.zeros((n_eps, 1), bool), lost[:, :-1]], axis=1)
    was_closed = np.concatenate([closed[:, :1], closed[:, :-1]], axis=1)
    released = holding & was_closed & ~closed

    full = np.full(total, UNKNOWN, np.int64)
    full[kept] = labels[live]
    events = _events(n_eps, starts, [
        (np.flatnonzero(~valid), "bad_input"),
        (kept[(first[:, None] + cols)[lost_onset & live]], "grasp_lost"),
        (kept[(first[:, None] + cols)[released & live]], "released"),
    ])
    return [Segmentation(spec.names, full[s:s + k], ev) for s, k, ev in zip(starts, lengths, events)]


def _events(n_eps: int, starts: np.ndarray, groups: list[tuple[np.ndarray, str]]) -> list[list[tuple[int, str]]]:
    """Per-episode (step, name) lists, in step order (same-step events in the order of `groups`)."""
    out: list[list[tuple[int, str]]] = [[] for _ in range(n_eps)]
    flat = [(int(i), code) for code, (indices, _) in enumerate(groups) for i in indices]
    for i, code in sorted(flat):
        ep = int(np.searchsorted(starts, i, side="right") - 1)
        out[ep].append((i - int(starts[ep]), groups[code][1]))
    return out
