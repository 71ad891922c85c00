"""The safety layer and the message conversions without ROS: clipping, step limits, the workspace box,
dry_run and the e-stop latch; image checks; twist <-> action round trip; the TCP pose from forward
kinematics against ManiSkill3's own."""

from __future__ import annotations

import numpy as np
import pytest

from stare_ros.config import PolicyServerConfig, SafetyConfig
from stare_ros.conversions import (InputError, TcpPose, action_to_twist, image_array, joint_positions,
                                   quaternion_wxyz, rotation_matrix, twist_to_action)
from stare_ros.safety import SafetyLayer

INSIDE = np.array([0.3, 0.0, 0.3])


def test_actions_are_clipped_and_step_limited():
    layer = SafetyLayer(SafetyConfig(max_step_translation_m=0.05, max_step_rotation_rad=0.05))
    command = layer.filter(np.array([3.0, 0, 0, 0, 0, 0, -7.0]), INSIDE)
    assert "clipped" in command.reasons and "translation limited" in command.reasons
    assert command.action[0] == pytest.approx(0.5) and command.action[6] == -1.0  # 0.05 m of the 0.1 m scale
    command = layer.filter(np.array([0, 0, 0, 0.6, 0.8, 0, 1.0]), INSIDE)  # 0.1 rad asked, 0.05 allowed
    assert command.reasons == ["rotation limited"]
    np.testing.assert_allclose(command.action[3:6], [0.3, 0.4, 0.0], atol=1e-6)
    small = np.array([0.1, -0.2, 0.1, 0.05, 0, 0, 0.5], np.float32)
    command = layer.filter(small, INSIDE)
    assert not command.held and command.reasons == [] and np.array_equal(command.action, small)


def test_workspace_box_cuts_motion_that_would_leave_it():
    cfg = SafetyConfig(workspace_min=(0.0, -0.5, 0.1), workspace_max=(1.0, 0.5, 1.0), max_step_translation_m=0.2)
    layer = SafetyLayer(cfg)
    command = layer.filter(np.array([0.5, 0.5, -0.5, 0, 0, 0, 1]), np.array([0.5, 0.0, 0.12]))
    assert "workspace" in command.reasons
    np.testing.assert_allclose(command.action[:3] * cfg.pos_scale_m, [0.05, 0.05, -0.02], atol=1e-7)
    # from below the box only upward (back inside) motion passes
    command = layer.filter(np.array([0, 0, -0.5, 0, 0, 0, 1]), np.array([0.5, 0.0, 0.05]))
    assert command.action[2] == 0.0
    command = layer.filter(np.array([0, 0, 0.3, 0, 0, 0, 1]), np.array([0.5, 0.0, 0.05]))
    assert command.action[2] == pytest.approx(0.3)


def test_estop_latches_and_holds_keep_the_gripper():
    layer = SafetyLayer(SafetyConfig())
    assert layer.filter(np.array([0, 0, 0, 0, 0, 0, -1.0]), INSIDE).action[6] == -1.0  # closed on an object
    layer.engage_estop()
    for _ in range(3):
        command = layer.filter(np.ones(7), INSIDE)
        assert command.held and command.reasons == ["e-stop"]
        assert command.action[:6].tolist() == [0.0] * 6 and command.action[6] == -1.0  # does not drop it
    layer.release_estop()
    assert not layer.filter(np.ones(7) * 0.1, INSIDE).held


@pytest.mark.parametrize("raw", [np.full(7, np.nan), np.ones(6), np.array([np.inf] + [0.0] * 6)])
def test_unusable_policy_output_holds(raw):
    assert SafetyLayer(SafetyConfig()).filter(raw, INSIDE).held


def test_dry_run_holds_but_reports_the_other_reasons():
    command = SafetyLayer(SafetyConfig(dry_run=True)).filter(np.full(7, 2.0), INSIDE)
    assert command.held and command.reasons[0] == "dry_run" and "clipped" in command.reasons


@pytest.mark.parametrize("bad", [dict(workspace_min=(1.0, 0, 0)), dict(stale_after_s=0.0), dict(act_on="sometimes"),
                                 dict(base_pose=(0.0,) * 6), dict(arm_joints=("a",)), dict(gil_switch_interval_s=-0.001)])
def test_bad_parameters_are_refused(bad):
    with pytest.raises(ValueError):
        PolicyServerConfig(**bad)


class _Image:
    def __init__(self, data, height, width, encoding="rgb8", step=None):
        self.data, self.height, self.width, self.encoding = data, height, width, encoding
        self.step = width * 3 if step is None else step


def test_images_are_checked_and_bgr_is_converted():
    rgb = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    np.testing.assert_array_equal(image_array(_Image(rgb.tobytes(), 4, 5), 4, 5), rgb)
    np.testing.assert_array_equal(image_array(_Image(rgb[..., ::-1].tobytes(), 4, 5, "bgr8"), 4, 5), rgb)
    padded = np.concatenate([rgb.reshape(4, 15), np.zeros((4, 1), np.uint8)], axis=1)  # row padding
    np.testing.assert_array_equal(image_array(_Image(padded.tobytes(), 4, 5, step=16), 4, 5), rgb)
    with pytest.raises(InputError, match="encoding"):
        image_array(_Image(rgb.tobytes(), 4, 5, "rgba8"), 4, 5)
    with pytest.raises(InputError, match="needs 5x4"):
        image_array(_Image(b"", 0, 0), 4, 5)
    with pytest.raises(InputError, match="bytes"):
        image_array(_Image(rgb.tobytes()[:-1], 4, 5), 4, 5)


def test_joint_positions_by_name():
    q = joint_positions(["b", "a", "c"], [2.0, 1.0, 3.0], ["a", "b"])
    assert q.tolist() == [1.0, 2.0]
    with pytest.raises(InputError, match="lacks c"):
        joint_positions(["a", "b"], [1.0, 2.0], ["a", "c"])
    with pytest.raises(InputError, match="non-finite"):
        joint_positions(["a"], [float("nan")], ["a"])
    with pytest.raises(InputError, match="2 names but 1"):
        joint_positions(["a", "b"], [1.0], ["a"])


def test_twist_round_trip():
    action = np.array([0.1, -0.5, 1.0, 0.2, 0.0, -0.3, -1.0], np.float32)
    linear, angular = action_to_twist(action, 20.0, 0.1, 0.1)
    assert linear[2] == pytest.approx(2.0)  # 0.1 m per 1/20 s
    np.testing.assert_allclose(twist_to_action(linear, angular, -1.0, 20.0, 0.1, 0.1), action, atol=1e-7)


def test_quaternion_round_trip():
    rng = np.random.default_rng(0)
    for q in rng.normal(size=(50, 4)):
        q /= np.linalg.norm(q)
        got = quaternion_wxyz(rotation_matrix(q))
        assert min(np.abs(got - q).max(), np.abs(got + q).max()) < 1e-9


def test_tcp_pose_from_joints_equals_maniskills(real_demos):
    episode = real_demos("PickCube-v1").episode(0)
    tcp = TcpPose([-0.615, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0])  # PickCube's Panda base
    got = np.stack([tcp.world(q[:7]) for q in episode.arrays["qpos"]])
    np.testing.assert_allclose(got, episode.arrays["tcp_pose"], atol=2e-5)
