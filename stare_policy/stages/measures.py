"""The scene quantities stage events, costs and potentials are computed from, in simulation.

All functions are elementwise over a leading batch dimension, which is either the steps of one episode
(offline labelling, costs) or the envs of a batched simulation (online shaping): one code path for both.
Inputs use the dataset's names (docs/data-format.md): `priv.tcp_pose`, `priv.<actor>_pose` (xyz + wxyz),
`priv.is_grasped`, and the commanded gripper `action[:, -1]`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from stare_policy.stages.spec import TaskStages


class MissingStateError(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


@dataclass
class Measures:
    """Per-step (or per-env) quantities; distances in metres, angles in radians."""

    gripper: np.ndarray
    """Commanded gripper action (+1 open, -1 closed)."""
    reach: np.ndarray
    """TCP to the object's grasp region (or push contact point)."""
    grasped: np.ndarray
    """The robot holds the object (False for tasks without a grasp)."""
    lift: np.ndarray
    """Object height above its height at the start of the episode."""
    obj: np.ndarray
    """(N, 3) object position."""
    target: np.ndarray
    """Object to the target point (inf where the task has no target point)."""
    tilt: np.ndarray
    """Angle of the object's long (x) axis from vertical."""
    height_error: np.ndarray
    """|object height - its upright height| (0 where the task has no orientation goal)."""

    def __len__(self) -> int:
        return len(self.gripper)

    def rows(self, index) -> "Measures":
        """The measures of some rows (a slice keeps them 1-D)."""
        return Measures(**{f.name: getattr(self, f.name)[index] for f in dataclasses.fields(self)})


def x_axis(quat_wxyz: np.ndarray) -> np.ndarray:
    """The local x axis of orientations given as unit quaternions (w, x, y, z)."""
    w, x, y, z = (quat_wxyz[..., i] for i in range(4))
    return np.stack([1 - 2 * (y * y + z * z), 2 * (x * y + w * z), 2 * (x * z - w * y)], axis=-1)


def _segment_distance(point: np.ndarray, centre: np.ndarray, axis: np.ndarray, half: float) -> np.ndarray:
    along = np.clip(((point - centre) * axis).sum(-1), -half, half)
    return np.linalg.norm(point - (centre + along[..., None] * axis), axis=-1)


def _pose(state: dict, key: str) -> np.ndarray:
    try:
        return np.asarray(state[key], dtype=np.float64)
    except KeyError:
        raise MissingStateError(f"privileged state lacks {key!r} (has {', '.join(sorted(state))})") from None


def compute_measures(state: dict, spec: TaskStages, object_start: np.ndarray | None = None) -> Measures:
    """Measures from privileged state arrays with a leading batch dim; `object_start` (3,) or (N, 3) is
    the object's position at the start of the episode (default: its position in the first row)."""
    tcp = _pose(state, "priv.tcp_pose")[..., :3]
    obj_pose = _pose(state, f"priv.{spec.object}_pose")
    obj, axis = obj_pose[..., :3], x_axis(obj_pose[..., 3:7])
    start = obj[:1] if object_start is None else np.asarray(object_start, dtype=np.float64)
    n = len(tcp)
    gripper = np.asarray(state["action"])[..., -1] if "action" in state else _pose(state, "gripper")

    target = np.full(n, np.inf)
    if spec.target is not None:
        goal = _pose(state, f"priv.{spec.target}_pose")[..., :3] + np.asarray(spec.target_offset)
        delta = (obj - goal)[..., :2] if spec.target_xy else obj - goal
        target = np.linalg.norm(delta, axis=-1)
    upright = spec.upright_height_m
    return Measures(
        gripper=np.asarray(gripper, dtype=np.float64).reshape(n),
        reach=_segment_distance(tcp, obj + np.asarray(spec.contact_offset), axis, spec.grasp_span_m),
        grasped=np.asarray(state.get("priv.is_grasped", np.zeros(n, bool)), dtype=bool).reshape(n),
        lift=obj[..., 2] - start[..., 2],
        obj=obj,
        target=target,
        tilt=np.arccos(np.clip(np.abs(axis[..., 2]), 0.0, 1.0)),
        height_error=np.abs(obj[..., 2] - upright) if upright is not None else np.zeros(n),
    )
