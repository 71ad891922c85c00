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
    EVENTS, N_ARM, N_FINGERS, Reference, Sample, check_spec, grasp_stage, holding_from,
)
from stare_policy.stages.segmentation import UNKNOWN, Segmentation
from stare_policy.stages.spec import TaskStages


def _validated(qpos, gripper, times, i: int, rate_hz: float):
    q, g = np.asarray(qpos, dtype=np.float64), np.asarray(gripper, dtype=np.float64).reshape(-1)
    if q.ndim != 2 or q.shape[1] != N_ARM + N_FINGERS:
        raise ValueError(f"episode {i}: expected joint positions of shape (T, {N_ARM + N_FINGERS}) "
                         f"({N_ARM} arm + {N_FINGERS} finger joints), got {q.shape}")
    t = np.arange(len(q)) / rate_hz if times is None else np.asarray(times, dtype=np.float64).reshape(-1)
    if len(g) != len(q) or len(t) != len(q):
        raise ValueError(f"episode {i}: {len(q)} joint samples but {len(g)} gripper commands and {len(t)} times")
    valid = np.isfinite(q).all(1) & np.isfinite(g) & np.isfinite(t)
    return q[valid], g[valid], t[valid], np.flatnonzero(valid), len(q)


def _padded(parts: list[np.ndarray], width: int) -> np.ndarray:
    out = np.zeros((len(parts), width) + parts[0].shape[1:])
    for row, part in enumerate(parts):
        out[row, :len(part)] = part
        if len(part):
            out[row, len(part):] = part[-1]
    return out


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
    eps = [_validated(q, g, None if times is None else times[i], i, rate_hz)
           for i, (q, g) in enumerate(zip(qpos, gripper, strict=True))]
    lengths = np.array([len(e[0]) for e in eps])
    width_cols = max(int(lengths.max(initial=0)), 1)
    all_q = np.concatenate([e[0][:, :N_ARM] for e in eps]) if eps else np.zeros((0, N_ARM))
    pos = np.split(fk.batch(all_q)[0], np.cumsum(lengths)[:-1]) if len(all_q) else [np.zeros((0, 3))] * len(eps)

    x, y, z = (_padded([p[:, j] for p in pos], width_cols) for j in range(3))
    width = _padded([e[0][:, N_ARM] + e[0][:, N_ARM + 1] for e in eps], width_cols)
    command = _padded([e[1] for e in eps], width_cols)
    t = _padded([e[2] for e in eps], width_cols)
    cols = np.arange(width_cols)[None, :]
    live = cols < lengths[:, None]

    old = np.maximum(np.arange(width_cols) - max(1, th.speed_window), 0)
    dist = np.sqrt((x - x[:, old]) ** 2 + (y - y[:, old]) ** 2 + (z - z[:, old]) ** 2)
    speed = dist / np.maximum(t - t[:, old], 1e-9)
    prev_width = np.concatenate([width[:, :1], width[:, :-1]], axis=1)
    f = Sample(x, y, z, width, prev_width, command, speed)

    rows = np.arange(len(eps))
    labels = np.zeros(x.shape, np.int64)
    entered = np.zeros(len(eps), np.int64)
    ref = [x[:, 0], y[:, 0], z[:, 0], z[:, 0]]
    scanning = lengths > 0
    grasp = grasp_stage(spec)
    for k, stage in enumerate(spec.stages[1:], start=1):
        after = cols > entered[:, None]
        since = np.where(after, speed, 0.0)
        peak = np.concatenate([np.zeros((len(eps), 1)), np.maximum.accumulate(since, axis=1)[:, :-1]], axis=1)
        r = Reference(*(v[:, None] for v in ref), peak=peak)
        hit = EVENTS[stage.proprio_entry](f, r, th, np) & after & live & scanning[:, None]
        found, at = hit.any(1), hit.argmax(1)
        labels = np.where(found[:, None] & (cols >= at[:, None]), k, labels)
        new = [x[rows, at], y[rows, at], z[rows, at], z[rows, at] if k == grasp else ref[3]]
        ref = [np.where(found, n, o) for n, o in zip(new, ref)]
        entered = np.where(found, at, entered)
        scanning &= found

    closed = command < th.close_command
    holding = labels >= holding_from(spec)
    lost = holding & closed & (width < th.hold_width_m)
    lost_onset = lost & ~np.concatenate([np.zeros((len(eps), 1), bool), lost[:, :-1]], axis=1)
    was_closed = np.concatenate([closed[:, :1], closed[:, :-1]], axis=1)
    released = holding & was_closed & ~closed

    out = []
    for row, (_, _, _, index, total) in enumerate(eps):
        n = lengths[row]
        full = np.full(total, UNKNOWN, np.int64)
        full[index] = labels[row, :n]
        events = [(int(i), "bad_input") for i in np.setdiff1d(np.arange(total), index)]
        events += [(int(index[s]), "grasp_lost") for s in np.flatnonzero(lost_onset[row, :n])]
        events += [(int(index[s]), "released") for s in np.flatnonzero(released[row, :n])]
        order = {"bad_input": 0, "grasp_lost": 1, "released": 2}
        out.append(Segmentation(spec.names, full, sorted(events, key=lambda e: (e[0], order[e[1]]))))
    return out
