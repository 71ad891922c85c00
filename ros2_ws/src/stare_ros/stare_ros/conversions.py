"""Between ROS messages and what the policy and the stage separator read: camera images as (H, W, 3)
uint8 RGB arrays, joint states as the 9 Panda positions, the TCP pose from forward kinematics, and
normalised pd_ee_delta_pose actions as MoveIt Servo twists (m/s, rad/s in the base frame).

Every check raises `InputError` with one line, which the nodes turn into a hold and a diagnostic."""

from __future__ import annotations

import math

import numpy as np

from stare_policy.stages import ChainFK


class InputError(ValueError):
    """An input message the policy cannot use (wrong encoding or size, NaN, missing joints)."""


ENCODINGS = ("rgb8", "bgr8")


def image_array(msg, height: int, width: int) -> np.ndarray:
    """A sensor_msgs/Image (rgb8 or bgr8) as a contiguous (height, width, 3) uint8 RGB array."""
    if msg.encoding not in ENCODINGS:
        raise InputError(f"image encoding {msg.encoding!r} is not one of {', '.join(ENCODINGS)}")
    if (msg.height, msg.width) != (height, width):
        raise InputError(f"image is {msg.width}x{msg.height}, the policy needs {width}x{height}")
    row = width * 3
    data = msg.data
    if msg.step < row or len(data) != msg.step * height:
        raise InputError(f"image data holds {len(data)} bytes, expected step {msg.step} x height {height} "
                         f"with step >= {row}")
    image = np.frombuffer(bytes(data) if not isinstance(data, (bytes, bytearray, memoryview, np.ndarray)) else data,
                          np.uint8).reshape(height, msg.step)[:, :row].reshape(height, width, 3)
    if msg.encoding == "bgr8":
        image = image[..., ::-1]
    return np.array(image, order="C")  # a writable copy (torch warns on read-only buffers)


def joint_positions(names, positions, wanted) -> np.ndarray:
    """Positions of the `wanted` joints, in that order, from a JointState's name/position arrays."""
    if len(names) != len(positions):
        raise InputError(f"joint state has {len(names)} names but {len(positions)} positions")
    index = {name: i for i, name in enumerate(names)}
    missing = [name for name in wanted if name not in index]
    if missing:
        raise InputError(f"joint state lacks {', '.join(missing)}")
    q = np.array([positions[index[name]] for name in wanted], np.float64)
    if not _finite32(q):
        raise InputError("joint state has non-finite positions")
    return q


def goal_point(point) -> np.ndarray:
    """A geometry_msgs/Point as the policy's (3,) float32 goal input."""
    goal = np.array([point.x, point.y, point.z], np.float64)
    if not _finite32(goal):
        raise InputError("non-finite goal point")
    return goal.astype(np.float32)


def _finite32(values: np.ndarray) -> bool:
    """Finite also as float32, which the policy reads (1e300 is inf there)."""
    with np.errstate(over="ignore"):
        return bool(np.all(np.isfinite(values.astype(np.float32))))


def input_stamp(stamp: float, now: float, max_future_s: float) -> float:
    """A header stamp (s) the staleness watchdog can trust: not further ahead of `now` than clock skew
    explains (a future stamp would keep a frozen input fresh)."""
    if stamp - now > max_future_s:
        raise InputError(f"stamped {stamp - now:.3g} s in the future (more than {max_future_s:g} s ahead of this clock)")
    return stamp


def instruction_text(text: str, max_chars: int) -> str:
    if len(text) > max_chars:
        raise InputError(f"instruction of {len(text)} characters is longer than {max_chars}")
    return text


def quaternion_wxyz(r) -> np.ndarray:
    """Unit quaternion (w, x, y, z) of a 3x3 rotation matrix (or its 9 values, row-major), by
    Shepperd's method: the component computed from the square root is positive. That is PhysX's (so
    SAPIEN's and ManiSkill3's) sign choice, and the policy was trained on ManiSkill3's `tcp_pose`."""
    m = np.asarray(r, np.float64).reshape(3, 3)
    t = np.trace(m)
    if t > 0:
        s = 2.0 * math.sqrt(t + 1.0)
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    else:
        i = int(np.argmax(np.diag(m)))
        j, k = (i + 1) % 3, (i + 2) % 3
        s = 2.0 * math.sqrt(max(1.0 + m[i, i] - m[j, j] - m[k, k], 1e-12))
        q = [0.0] * 4
        q[0] = (m[k, j] - m[j, k]) / s
        q[1 + i] = 0.25 * s
        q[1 + j] = (m[j, i] + m[i, j]) / s
        q[1 + k] = (m[k, i] + m[i, k]) / s
    q = np.array(q)
    return q / np.linalg.norm(q)


def rotation_matrix(q) -> np.ndarray:
    w, x, y, z = np.asarray(q, np.float64) / np.linalg.norm(q)
    return np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
                     [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
                     [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]])


class TcpPose:
    """The TCP pose from arm joint positions: in the robot base frame (the workspace box) and in the
    world frame the policy was trained in (its `tcp_pose` input: xyz + quaternion wxyz)."""

    def __init__(self, base_pose, fk: ChainFK | None = None):
        self.fk = fk or ChainFK()
        self.base_position = np.asarray(base_pose[:3], np.float64)
        self.base_rotation = rotation_matrix(base_pose[3:])

    def base(self, arm_q) -> tuple[np.ndarray, np.ndarray]:
        """Position (3,) and rotation matrix (3, 3) in the base frame."""
        pose = self.fk.pose([float(v) for v in arm_q])
        return np.array(pose[:3]), np.array(pose[3:]).reshape(3, 3)

    def world(self, arm_q) -> np.ndarray:
        position, rotation = self.base(arm_q)
        world_q = quaternion_wxyz(self.base_rotation @ rotation)
        return np.r_[self.base_position + self.base_rotation @ position, world_q].astype(np.float32)


def action_to_twist(action, rate_hz: float, pos_scale_m: float, rot_scale_rad: float):
    """Normalised delta action -> (linear m/s, angular rad/s): the per-step delta spread over one period."""
    a = np.asarray(action, np.float64)
    return a[:3] * pos_scale_m * rate_hz, a[3:6] * rot_scale_rad * rate_hz


def twist_to_action(linear, angular, gripper: float, rate_hz: float, pos_scale_m: float,
                    rot_scale_rad: float) -> np.ndarray:
    a = np.zeros(7, np.float32)
    a[:3] = np.asarray(linear, np.float64) / (pos_scale_m * rate_hz)
    a[3:6] = np.asarray(angular, np.float64) / (rot_scale_rad * rate_hz)
    a[6] = gripper
    return a
