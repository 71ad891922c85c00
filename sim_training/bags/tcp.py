"""The policy's `tcp_pose` input for a whole episode of joint states at once: what `stare_ros.conversions.
TcpPose.world` computes per sample on the robot (forward kinematics of the arm joints moved into the world
frame by the base pose, quaternion wxyz by Shepperd's method with its sign choice), vectorised."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

from stare_ros.conversions import TcpPose


@lru_cache(maxsize=4)
def _tcp(base_pose: tuple[float, ...]) -> TcpPose:
    return TcpPose(base_pose)


def quaternions_wxyz(m: np.ndarray) -> np.ndarray:
    """(N, 3, 3) rotation matrices -> (N, 4) unit quaternions, the same as `conversions.quaternion_wxyz`
    on each: the component taken from the square root is the largest of w, x, y, z and positive."""
    m = np.asarray(m, np.float64)
    trace = np.trace(m, axis1=1, axis2=2)
    diag = np.diagonal(m, axis1=1, axis2=2)
    q = np.empty((len(m), 4))
    w_case = trace > 0
    s = 2.0 * np.sqrt(np.maximum(trace + 1.0, 1e-12))
    q[:, 0] = 0.25 * s
    q[:, 1] = (m[:, 2, 1] - m[:, 1, 2]) / s
    q[:, 2] = (m[:, 0, 2] - m[:, 2, 0]) / s
    q[:, 3] = (m[:, 1, 0] - m[:, 0, 1]) / s
    axis = np.argmax(diag, axis=1)
    for i in range(3):
        rows = ~w_case & (axis == i)
        if not rows.any():
            continue
        j, k = (i + 1) % 3, (i + 2) % 3
        r = m[rows]
        s = 2.0 * np.sqrt(np.maximum(1.0 + r[:, i, i] - r[:, j, j] - r[:, k, k], 1e-12))
        part = np.empty((len(r), 4))
        part[:, 0] = (r[:, k, j] - r[:, j, k]) / s
        part[:, 1 + i] = 0.25 * s
        part[:, 1 + j] = (r[:, j, i] + r[:, i, j]) / s
        part[:, 1 + k] = (r[:, k, i] + r[:, i, k]) / s
        q[rows] = part
    return q / np.linalg.norm(q, axis=1, keepdims=True)


def tcp_poses(arm_q: np.ndarray, base_pose: tuple[float, ...]) -> np.ndarray:
    """(N, 7) arm joint angles -> (N, 7) float32 TCP poses in the world frame (xyz + wxyz)."""
    tcp = _tcp(tuple(base_pose))
    position, rotation = tcp.fk.batch(np.asarray(arm_q, np.float64))
    world = tcp.base_position + position @ tcp.base_rotation.T
    return np.concatenate([world, quaternions_wxyz(tcp.base_rotation @ rotation)], axis=1).astype(np.float32)
