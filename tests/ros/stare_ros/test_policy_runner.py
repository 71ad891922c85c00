"""PolicyRunner without ROS: a checkpoint swapped in holds the arm while it loads (and compiles), with no
full garbage collection during a compile, and the new policy acts after it; a load that fails leaves the
running policy acting. Real tiny checkpoint, real compile."""

from __future__ import annotations

import gc
import threading
import time

import numpy as np
import pytest

from stare_policy.policy import VLAPolicy
from stare_ros.config import PolicyServerConfig
from stare_ros.policy_runner import PolicyRunner, no_full_collections

INSTRUCTION = "pick up the red cube and move it to the green goal"


@pytest.fixture
def episode(real_demos):
    return real_demos("PickCube-v1").episode(0)


def _feed(runner: PolicyRunner, episode, now: float) -> None:
    runner.set_image(episode.arrays["image"][0], now)
    runner.set_joints(episode.arrays["qpos"][0].astype(np.float64), now)
    runner.set_goal(episode.arrays["goal_pos"][0])


SHIPPED = "checkpoints/pick-cube-sft"


@pytest.mark.parametrize("compile_policy", [False, True], ids=["eager", "compiled"])
def test_a_swap_holds_until_the_new_policy_is_in(tiny_checkpoint, episode, repo_root, compile_policy):
    """Eager, the shipped checkpoint comes in (a load of ~0.1 s, many tiny-model ticks long); compiled,
    the tiny one again (its compile is the long part)."""
    new = str(tiny_checkpoint) if compile_policy else str(repo_root / SHIPPED)
    runner = PolicyRunner(PolicyServerConfig(checkpoint=str(tiny_checkpoint), compile_policy=compile_policy,
                                             instruction=INSTRUCTION, stale_after_s=5.0))
    old = runner.policy
    _feed(runner, episode, time.time())
    assert not runner.tick().command.held

    ticks, loading = [], threading.Thread(target=runner.load, args=(new,))
    loading.start()
    deadline = time.monotonic() + 300.0
    while loading.is_alive() and time.monotonic() < deadline:
        _feed(runner, episode, time.time())
        ticks.append(runner.tick())
        time.sleep(0.002)  # leaves the loader the interpreter lock (a node's timer waits a period)
    loading.join(timeout=1.0)
    assert not loading.is_alive(), "the load did not finish in 300 s"

    held = [t for t in ticks if f"loading {new}" in t.command.reasons]
    assert held, "no tick came while the checkpoint loaded"
    assert all(t.command.held and t.raw is None for t in held)  # the old policy did not run
    assert runner.policy is not old and runner.checkpoint == new
    assert (runner.policy.compiled is not None) == compile_policy
    _feed(runner, episode, time.time())
    after = runner.tick()
    assert not after.command.held, after.command.reasons
    q = episode.arrays["qpos"][0]
    proprio = {"qpos": q, "tcp_pose": runner.tcp.world(q[:7]), "goal_pos": episode.arrays["goal_pos"][0]}
    np.testing.assert_allclose(after.raw, VLAPolicy.load(new).act(episode.arrays["image"][0], INSTRUCTION, proprio),
                               atol=1e-5)


def test_a_failed_compiling_load_keeps_the_running_policy_acting(tiny_checkpoint, episode, tmp_path):
    runner = PolicyRunner(PolicyServerConfig(checkpoint=str(tiny_checkpoint), compile_policy=True,
                                             instruction=INSTRUCTION, stale_after_s=5.0))
    old = runner.policy
    with pytest.raises(Exception):
        runner.load(str(tmp_path))  # an empty directory: no checkpoint
    _feed(runner, episode, time.time())
    tick = runner.tick()
    assert runner.policy is old and not tick.command.held, tick.command.reasons


def test_no_full_collection_runs_inside_and_the_thresholds_come_back():
    before = gc.get_threshold()
    collections = []

    def count(phase, info):
        if phase == "start" and info["generation"] == 2:
            collections.append(info)

    gc.callbacks.append(count)
    try:
        def churn():  # survivors enough for several full collections (see the control below)
            return [[] for _ in range(400_000)]

        churn()
        assert collections, "the control: this churn triggers full collections outside"
        collections.clear()
        with no_full_collections():
            churn()
        assert not collections
    finally:
        gc.callbacks.remove(count)
    assert gc.get_threshold() == before


def test_the_goal_point_is_awaited_only_where_the_task_states_one(repo_root, real_demos):
    """The StackCube checkpoint reads PickCube's goal input (it was fine-tuned from PickCube's); StackCube
    has no goal point, so the runner acts without one (zeros, as in training). PickCube's checkpoint holds
    until its goal arrives."""
    stack = real_demos("StackCube-v1").episode(0)
    now = time.time()
    runner = PolicyRunner(PolicyServerConfig(checkpoint=str(repo_root / "checkpoints" / "stack-cube-sft"),
                                             task="StackCube-v1", stale_after_s=5.0))
    runner.set_image(stack.arrays["image"][0], now)
    runner.set_joints(stack.arrays["qpos"][0].astype(np.float64), now)
    tick = runner.tick(now)
    assert not tick.command.held, tick.command.reasons
    q = stack.arrays["qpos"][0]
    zero_goal = {"qpos": q, "tcp_pose": runner.tcp.world(q[:7]), "goal_pos": np.zeros(3, np.float32)}
    np.testing.assert_allclose(tick.raw, runner.policy.act(stack.arrays["image"][0], runner._instruction, zero_goal),
                               atol=1e-5)

    pick = PolicyRunner(PolicyServerConfig(checkpoint=str(repo_root / SHIPPED), task="PickCube-v1",
                                           stale_after_s=5.0))
    pick.set_image(stack.arrays["image"][0], now)
    pick.set_joints(stack.arrays["qpos"][0].astype(np.float64), now)
    held = pick.tick(now)
    assert held.command.held and "no goal point" in held.command.reasons
