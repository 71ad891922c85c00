"""Every declared task builds in the real simulator with the policy camera and its declared state."""

import dataclasses
import os
import subprocess
import sys

import numpy as np
import pytest

from sim_training.envs import make_env, make_vector_env
from sim_training.envs.gpu_physics import render_backend
from sim_training.envs.observation import policy_inputs, privileged_state, success_flags
from sim_training.tasks import TASKS, get_task

TABLETOP = [spec for spec in TASKS.values() if spec.family == "maniskill"]
BRIDGE = [spec for spec in TASKS.values() if spec.family == "simpler"]


@pytest.mark.parametrize("spec", TABLETOP, ids=lambda s: s.env_id)
def test_task_creates_resets_and_steps_with_the_policy_camera(spec):
    env = make_env(spec)
    try:
        obs, _ = env.reset(seed=3)
        inputs = policy_inputs(obs, spec)
        assert inputs["image"].shape == (spec.camera.height, spec.camera.width, 3)
        assert inputs["image"].dtype == np.uint8 and inputs["image"].std() > 5  # a rendered scene, not blank
        assert inputs["qpos"].shape == (9,) and inputs["tcp_pose"].shape == (7,)
        assert list(obs["sensor_data"]) == [spec.camera.name] or spec.robot == "panda_wristcam"
        for _ in range(3):
            obs, _, _, _, info = env.step(env.action_space.sample())
        flags = success_flags(info, spec)
        assert set(flags) == set(spec.success_flags)
        state = privileged_state(env, spec)
        for actor in spec.tracked_actors:
            assert state[f"{actor}_pose"].shape == (7,)
        assert ("is_grasped" in state) == (spec.grasp_actor is not None)
    finally:
        env.close()


def _green_pixels(image: np.ndarray) -> int:
    r, g, b = (image[..., i].astype(int) for i in range(3))
    return int(((g > 150) & (r < 90) & (b < 90)).sum())


def test_pickcube_goal_is_visible_in_the_policy_image():
    spec = get_task("PickCube-v1")
    hidden = dataclasses.replace(spec, revealed_actors=())
    shown_env, hidden_env = make_env(spec), make_env(hidden)
    try:
        for seed in (0, 1, 2):
            shown = policy_inputs(shown_env.reset(seed=seed)[0], spec)["image"]
            concealed = policy_inputs(hidden_env.reset(seed=seed)[0], spec)["image"]
            assert _green_pixels(shown) > 0, f"goal not visible for seed {seed}"
            assert _green_pixels(concealed) == 0  # ManiSkill3 hides it by default: the wrapper matters
    finally:
        shown_env.close()
        hidden_env.close()


def test_bridge_tasks_without_assets_fail_at_once_with_a_clear_message(tmp_path):
    # One interpreter for all four tasks: MS_ASSET_DIR is read when mani_skill is imported.
    code = (
        "import sys\n"
        "from sim_training.envs import MissingAssetsError, make_env\n"
        f"for env_id in {[spec.env_id for spec in BRIDGE]!r}:\n"
        "    try:\n"
        "        make_env(env_id)\n"
        "    except MissingAssetsError as err:\n"
        "        print(env_id, '->', err)\n"
        "    else:\n"
        "        sys.exit(env_id + ' was built without its assets')\n"
    )
    env = {**os.environ, "MS_ASSET_DIR": str(tmp_path)}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert [line.split(" ->")[0] for line in lines] == [spec.env_id for spec in BRIDGE]
    for line in lines:
        assert "bridge_v2_real2sim" in line and "MS_ASSET_DIR" in line and str(tmp_path) in line


def test_vector_env_runs_tasks_in_spawned_workers():
    envs = make_vector_env("PushCube-v1", 2, context="forkserver")
    try:
        obs, _ = envs.reset(seed=[0, 1])
        image = obs["sensor_data"]["base_camera"]["rgb"]
        assert image.shape == (2, 128, 128, 3)
        assert not np.array_equal(obs["extra"]["tcp_pose"], np.zeros_like(obs["extra"]["tcp_pose"]))
        for _ in range(2):
            obs, reward, terminated, truncated, info = envs.step(envs.action_space.sample())
        assert reward.shape == (2,) and "success" in info
    finally:
        envs.close()


def test_fork_context_is_refused():
    with pytest.raises(ValueError, match="fork"):
        make_vector_env("PushCube-v1", 2, context="fork")


_RENDER_THREADS = """
import os, sys
from sim_training.envs import make_env
make_env("PickCube-v1").close()
print(os.environ.get("LP_NUM_THREADS"))
"""


@pytest.mark.skipif(render_backend("cpu") != "cpu", reason="renders on the GPU here, not with lavapipe")
@pytest.mark.parametrize("preset, expected", [(None, "0"), ("3", "3")])
def test_cpu_rendering_runs_lavapipe_in_the_stepping_thread_unless_told_otherwise(preset, expected):
    env = {k: v for k, v in os.environ.items() if k != "LP_NUM_THREADS"}
    if preset is not None:
        env["LP_NUM_THREADS"] = preset
    proc = subprocess.run([sys.executable, "-c", _RENDER_THREADS], capture_output=True, text=True, env=env,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == expected
