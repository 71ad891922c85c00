"""Scripted experts in the real simulator: closed-loop successes recorded like the planner's demos."""

import numpy as np
import pytest

from sim_training.demos.collect import collect_demos
from sim_training.demos.scripted import HOLD_STEPS, NoScriptError, ScriptedDemoGenerator, perturb


@pytest.fixture(scope="module")
def pick_cube_episodes():
    generator = ScriptedDemoGenerator("PickCube-v1")
    try:
        yield [generator.generate(seed) for seed in (0, 1, 2)]
    finally:
        generator.close()


def test_pick_cube_script_succeeds_within_the_step_limit(pick_cube_episodes):
    for result in pick_cube_episodes:
        assert result.success, f"seed {result.seed}: {result.reason}"
        assert len(result.episode) < 100
        first = int(np.argmax(result.episode.arrays["flag.success"]))
        assert len(result.episode) == first + 1 + HOLD_STEPS  # held at the goal after the first success
        assert result.episode.arrays["flag.success"][first:].all()


def test_pick_cube_script_records_the_goal_and_a_feasible_command(pick_cube_episodes):
    for result in pick_cube_episodes:
        arrays = result.episode.arrays
        # The goal the policy is told is the goal marker's position.
        np.testing.assert_allclose(arrays["goal_pos"], arrays["priv.goal_site_pose"][:, :3], atol=1e-6)
        actions = arrays["action"]
        assert np.abs(actions).max() <= 1.0 and not actions[:, 3:6].any()  # translation only
        gripper = actions[:, 6]
        closed_at = int(np.argmax(gripper < 0))
        assert closed_at > 0 and (gripper[:closed_at] == 1).all() and (gripper[closed_at:] == -1).all()
        assert arrays["priv.is_grasped"][-1]


def test_scripted_demos_replay_from_their_initial_state(pick_cube_episodes):
    from sim_training.envs import make_env

    episode = pick_cube_episodes[0].episode
    env = make_env("PickCube-v1")
    try:
        env.reset(seed=episode.seed)
        np.testing.assert_allclose(env.unwrapped.get_state().numpy().reshape(-1), episode.arrays["initial_state"],
                                   atol=1e-5)
        for action in episode.arrays["action"]:
            _, _, _, _, info = env.step(action[None])
        assert info["success"].item()
    finally:
        env.close()


def _generate(task: str, seeds: tuple[int, ...], action_noise: float = 0.0):
    generator = ScriptedDemoGenerator(task, action_noise=action_noise)
    try:
        return [generator.generate(seed) for seed in seeds]
    finally:
        generator.close()


def _assert_succeeds_and_holds(results, max_steps: int) -> None:
    for result in results:
        assert result.success, f"seed {result.seed}: {result.reason}"
        assert len(result.episode) < max_steps
        first = int(np.argmax(result.episode.arrays["flag.success"]))
        assert len(result.episode) == first + 1 + HOLD_STEPS
        assert result.episode.arrays["flag.success"][first:].all()
        actions = result.episode.arrays["action"]
        assert np.abs(actions).max() <= 1.0 and not actions[:, 3:6].any()  # translation only


def test_stack_cube_script_grasps_places_on_cube_b_and_lets_go():
    results = _generate("StackCube-v1", (0, 1))
    _assert_succeeds_and_holds(results, 150)
    for result in results:
        arrays = result.episode.arrays
        gripper = arrays["action"][:, 6]
        closed_at = int(np.argmax(gripper < 0))
        opened_at = closed_at + int(np.argmax(gripper[closed_at:] > 0))
        # Open -> closed (carry) -> open (let go), once each.
        assert 0 < closed_at < opened_at and (gripper[:closed_at] == 1).all()
        assert (gripper[closed_at:opened_at] == -1).all() and (gripper[opened_at:] == 1).all()
        assert arrays["priv.is_grasped"][opened_at - 1] and not arrays["priv.is_grasped"][-1]
        a, b = arrays["priv.cubeA_pose"][-1, :3], arrays["priv.cubeB_pose"][-1, :3]
        assert np.linalg.norm(a[:2] - b[:2]) < 0.01 and abs(a[2] - b[2] - 0.04) < 0.005


@pytest.mark.parametrize("task, direction", [("PushCube-v1", 1.0), ("PullCube-v1", -1.0)])
def test_push_and_pull_scripts_slide_the_cube_along_x_with_closed_fingers(task, direction):
    results = _generate(task, (0, 1))
    _assert_succeeds_and_holds(results, 100)
    for result in results:
        arrays = result.episode.arrays
        assert (arrays["action"][:, 6] == -1).all()
        cube = arrays["priv.obj_pose"][:, :3]
        assert direction * (cube[-1, 0] - cube[0, 0]) > 0.05
        assert cube[:, 2].max() < 0.025  # slid, never lifted


def test_a_task_without_a_script_is_refused_before_any_simulation(tmp_path):
    with pytest.raises(NoScriptError, match="no scripted expert for LiftPegUpright-v1"):
        collect_demos("LiftPegUpright-v1", 1, tmp_path / "out", expert="scripted", progress=False)
    assert not (tmp_path / "out").exists()
    with pytest.raises(ValueError, match="expert must be one of"):
        collect_demos("PickCube-v1", 1, tmp_path / "out", expert="oracle", progress=False)


def test_perturb_moves_only_the_translation_and_stays_in_range():
    rng = np.random.default_rng(0)
    action = np.array([0.95, 0.0, -0.5, 0.0, 0.0, 0.0, -1.0], dtype=np.float32)
    perturbed = np.stack([perturb(action, 0.3, rng) for _ in range(200)])
    assert (perturbed[:, 3:] == action[3:]).all()
    assert np.abs(perturbed[:, :3]).max() <= 1.0 and perturbed[:, :3].std(axis=0).min() > 0.1
    assert (perturb(action, 0.3, np.random.default_rng(1)) == perturb(action, 0.3, np.random.default_rng(1))).all()


def test_perturbed_demos_record_the_experts_command_not_the_executed_one():
    generator = ScriptedDemoGenerator("PickCube-v1", action_noise=0.1)
    executed = []
    inner_step = generator.env.env.step  # the simulator under the recording wrapper

    def step(action):
        executed.append(np.asarray(action, dtype=np.float32).reshape(-1))
        return inner_step(action)

    generator.env.env.step = step
    try:
        episode = generator.generate(0).episode
    finally:
        generator.close()
    recorded, executed = episode.arrays["action"], np.stack(executed)
    assert episode.extra["action_noise"] == 0.1 and len(executed) == len(recorded)
    assert not recorded[:, 3:6].any() and set(np.unique(recorded[:, 6])) <= {-1.0, 1.0}
    assert (executed[:, 3:] == recorded[:, 3:]).all()  # orientation and gripper: the expert's own
    offset = executed[:, :3] - recorded[:, :3]
    assert 0.05 < offset.std() < 0.12 and np.abs(executed).max() <= 1.0


def test_action_noise_is_refused_for_the_open_loop_planner(tmp_path):
    with pytest.raises(ValueError, match="scripted"):
        collect_demos("PickCube-v1", 1, tmp_path / "d", expert="planner", action_noise=0.1)
    with pytest.raises(ValueError, match="action_noise"):
        ScriptedDemoGenerator("PickCube-v1", action_noise=float("nan"))
