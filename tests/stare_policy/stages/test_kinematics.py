"""Forward kinematics from the Panda URDF: against pytorch_kinematics and against the simulator."""

import contextlib
import io

import numpy as np
import pytest
import torch

from stare_policy.stages import ChainFK
from stare_policy.stages.kinematics import default_panda_urdf

PANDA_BASE_IN_WORLD = np.array([-0.615, 0.0, 0.0])
"""Where ManiSkill3's table scene puts the Panda base (checked against the env below)."""


@pytest.fixture(scope="module")
def fk():
    return ChainFK()


def test_matches_pytorch_kinematics_on_random_configurations(fk):
    import pytorch_kinematics as pk

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        chain = pk.build_serial_chain_from_urdf(fk.urdf_path.read_bytes(), "panda_hand_tcp").to(dtype=torch.float64)
    q = np.random.default_rng(0).uniform(-2.5, 2.5, (500, 7))
    expected = chain.forward_kinematics(torch.as_tensor(q)).get_matrix().numpy()
    pos, rot = fk.batch(q)
    np.testing.assert_allclose(pos, expected[:, :3, 3], atol=1e-6)
    np.testing.assert_allclose(rot, expected[:, :3, :3], atol=1e-6)
    one = fk.pose(q[7].tolist())
    np.testing.assert_allclose(one[:3], pos[7], atol=1e-12)
    np.testing.assert_allclose(np.reshape(one[3:], (3, 3)), rot[7], atol=1e-12)


def test_reproduces_the_recorded_tcp_pose_of_real_demos(fk, real_demos):
    from sim_training.envs import make_env

    dataset = real_demos("PickCube-v1")
    env = make_env(dataset.spec, obs_mode="state_dict")
    try:
        env.reset(seed=0)
        base = env.unwrapped.agent.robot.pose.raw_pose.numpy().reshape(-1)
    finally:
        env.close()
    np.testing.assert_allclose(base[:3], PANDA_BASE_IN_WORLD, atol=1e-6)
    np.testing.assert_allclose(base[3:], [1, 0, 0, 0], atol=1e-6)
    for episode in dataset:
        pos, _ = fk.batch(episode.arrays["qpos"][:, :7].astype(np.float64))
        np.testing.assert_allclose(pos + PANDA_BASE_IN_WORLD, episode.arrays["tcp_pose"][:, :3], atol=2e-4)


def test_default_urdf_is_the_one_mani_skill_ships():
    path = default_panda_urdf()
    assert path.name == "panda_v2.urdf" and path.parent.name == "panda" and path.is_file()


def test_bad_urdf_and_bad_tip_are_clear_errors(tmp_path, fk):
    broken = tmp_path / "broken.urdf"
    broken.write_text("<robot><joint")
    with pytest.raises(ValueError, match="cannot read URDF"):
        ChainFK(broken)
    with pytest.raises(ValueError, match="no joint chain .* 'no_such_link'"):
        ChainFK(tip="no_such_link")
    with pytest.raises(ValueError, match=r"shape \(N, 7\)"):
        fk.batch(np.zeros((4, 9)))
