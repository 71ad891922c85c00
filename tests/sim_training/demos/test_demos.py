"""Expert demos from the real planner and simulator: written, read back, and replayed to success."""

import json

import numpy as np
import pytest

from sim_training.data import Dataset
from sim_training.demos.cli import main as demos_main
from sim_training.envs import make_env
from sim_training.envs.observation import policy_inputs


def _replay(dataset: Dataset, index: int) -> tuple[bool, np.ndarray]:
    episode = dataset.episode(index)
    env = make_env(dataset.spec)
    try:
        obs, _ = env.reset(seed=episode.seed)
        np.testing.assert_allclose(env.unwrapped.get_state().numpy().reshape(-1), episode.arrays["initial_state"],
                                   atol=1e-5)
        first_image = policy_inputs(obs, dataset.spec)["image"]
        for action in episode.arrays["action"]:
            obs, _, _, _, info = env.step(action[None])
        return bool(info["success"].item()), first_image
    finally:
        env.close()


@pytest.mark.parametrize("task", ["PickCube-v1", "PushCube-v1"])
def test_demos_are_written_and_replay_to_success(task, tmp_path):
    out, summary = tmp_path / "demos", tmp_path / "summary.json"
    assert demos_main(["--task", task, "--episodes", "2", "--out", str(out), "--json", str(summary),
                       "--quiet"]) == 0
    report = json.loads(summary.read_text())
    assert {"task", "requested", "written", "attempts", "planner_success_rate", "seconds"} <= set(report)
    assert report["task"] == task and report["requested"] == report["written"] == 2
    assert 0 < report["planner_success_rate"] <= 1 and report["attempts"] >= 2

    dataset = Dataset(out)
    assert len(dataset) == 2 and dataset.spec.env_id == task
    assert len(dataset.action_stats["q01"]) == 7
    episode = dataset.episode(0)
    n = len(episode)
    assert episode.arrays["image"].shape == (n, 128, 128, 3)
    assert episode.arrays["qpos"].shape == (n, 9) and episode.arrays["tcp_pose"].shape == (n, 7)
    assert episode.arrays["flag.success"][-1]
    assert episode.instruction in dataset.spec.instructions
    for actor in dataset.spec.tracked_actors:
        assert episode.arrays[f"priv.{actor}_pose"].shape == (n, 7)
    assert np.abs(episode.arrays["action"]).max() <= 1.0  # normalised pd_ee_delta_pose actions

    if dataset.spec.grasp_actor is not None:
        # Contact data is stale right after a reset: no demo may start with the previous one's grasp.
        for ep in dataset:
            assert not ep.arrays["priv.is_grasped"][0] and ep.arrays["priv.is_grasped"].any()

    success, first_image = _replay(dataset, 0)
    assert success, "recorded actions did not replay to success"
    np.testing.assert_array_equal(first_image, episode.arrays["image"][0])

