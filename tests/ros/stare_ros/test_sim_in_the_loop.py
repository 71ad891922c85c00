"""The whole node graph over real DDS with ManiSkill3 as the robot: an episode started by service runs
closed-loop in lock-step, ends at the time limit, lands in a bag, and matches a direct rollout of the
same policy on the same seed step for step."""

from __future__ import annotations

import json

import numpy as np
import pytest
from ros_harness import bag_custom_data, wait_for

from stare_interfaces.msg import EpisodeEvent, StageState
from stare_interfaces.srv import StartEpisode
from stare_ros.ros_common import EVENTS, RELIABLE

pytestmark = pytest.mark.filterwarnings("ignore:module 'sre_:DeprecationWarning")
STEPS = 6
SEED = 1_000_000


def _direct_rollout(checkpoint, seed: int, steps: int) -> list[np.ndarray]:
    from stare_policy.policy import VLAPolicy
    from stare_ros.sim_robot import SimRobot

    policy, robot = VLAPolicy.load(checkpoint), SimRobot("PickCube-v1", steps)
    try:
        obs, actions = robot.reset(seed), []
        while not obs.done:
            proprio = {"qpos": obs.qpos.astype(np.float32), "tcp_pose": robot.tcp_pose(),
                       "goal_pos": obs.goal.astype(np.float32)}
            actions.append(policy.act(obs.image, robot.spec.instruction, proprio))
            obs = robot.step(actions[-1])
        return actions
    finally:
        robot.close()


def test_lockstep_episode_through_ros_matches_a_direct_rollout(ros, tiny_checkpoint, tmp_path):
    from rosbags.rosbag2 import Reader

    from stare_ros.nodes.episode_logger import EpisodeLogger
    from stare_ros.nodes.policy_server import PolicyServer
    from stare_ros.nodes.sim_bridge import SimBridge
    from stare_ros.nodes.stage_segmenter import StageSegmenter
    from stare_ros.recorder import typestore

    ros.start(SimBridge, task="PickCube-v1", mode="lockstep", max_episode_steps=STEPS)
    ros.start(PolicyServer, checkpoint=str(tiny_checkpoint), act_on="observation", control_rate_hz=20.0,
              stale_after_s=2.0, max_step_translation_m=0.18, max_step_rotation_rad=0.18)  # as config/sim.yaml
    ros.start(StageSegmenter, task="PickCube-v1")
    ros.start(EpisodeLogger, output_dir=str(tmp_path / "bags"), checkpoint=str(tiny_checkpoint))
    probe = ros.node("probe")
    events = ros.recorder(probe, EpisodeEvent, "/episode/events", EVENTS)
    stages = ros.recorder(probe, StageState, "/stage_state", RELIABLE)

    response = ros.call(probe, StartEpisode, "/episode/start", StartEpisode.Request(task="PickCube-v1", seed=SEED))
    assert response.success, response.message
    wait_for(lambda: any(e.event == EpisodeEvent.SAVED for e in events), 120.0, "the episode's bag")
    saved = next(e for e in events if e.event == EpisodeEvent.SAVED)
    stop = next(e for e in events if e.event == EpisodeEvent.STOP)
    assert saved.episode_id == stop.episode_id == response.episode_id
    assert stop.outcome in ("timeout", "success") and stop.seed == SEED
    assert 1 <= stop.steps <= STEPS and (stop.steps == STEPS or stop.outcome == "success")
    assert stages and stages[0].stage_name == "Reach"

    store = typestore()
    with Reader(saved.bag_path) as reader:
        counts = {c.topic: c.msgcount for c in reader.connections}
        actions = [store.deserialize_cdr(data, c.msgtype) for c, _, data in
                   reader.messages([c for c in reader.connections if c.topic == "/policy_server/action"])]
    custom = bag_custom_data(saved.bag_path)
    assert custom["stare.outcome"] == stop.outcome and custom["stare.seed"] == str(SEED)
    assert custom["stare.checkpoint"] == str(tiny_checkpoint)
    assert custom["stare.instruction"] == "pick up the red cube and move it to the green goal"
    assert json.loads(custom["stare.stages"])[0]["name"] == "Reach"
    # one observation before the first step and one after each step
    assert counts["/camera/image_raw"] >= stop.steps + 1 and counts["/joint_states"] >= stop.steps + 1
    assert counts["/episode/events"] >= 2 and counts["/stage_state"] >= 1
    index = [json.loads(line) for line in (tmp_path / "bags" / "episodes.jsonl").read_text().splitlines()]
    assert index[-1]["bag"] == saved.bag_path and index[-1]["outcome"] == stop.outcome

    # The policy also answers the final observation (the bridge, done, ignores that command).
    # (An action held because a loaded machine made its inputs stale makes the bridge offer the state again.)
    acted = [np.array(a.command) for a in actions if len(a.raw) == 7 and not a.held]
    assert stop.steps <= len(acted) <= stop.steps + 1
    want = _direct_rollout(tiny_checkpoint, SEED, STEPS)
    assert len(want) == stop.steps
    np.testing.assert_allclose(np.stack(acted[:stop.steps]), np.stack(want), atol=1e-5)


@pytest.mark.parametrize("with_policy", [True, False])
def test_realtime_bridge_applies_twists_and_holds_still_without_them(ros, tiny_checkpoint, with_policy):
    from sensor_msgs.msg import JointState

    from stare_ros.nodes.policy_server import PolicyServer
    from stare_ros.nodes.sim_bridge import SimBridge

    steps = 8
    ros.start(SimBridge, task="PickCube-v1", mode="realtime", max_episode_steps=steps)
    if with_policy:
        ros.start(PolicyServer, checkpoint=str(tiny_checkpoint), act_on="timer", control_rate_hz=20.0,
                  stale_after_s=1.0)
    probe = ros.node("probe")
    events = ros.recorder(probe, EpisodeEvent, "/episode/events", EVENTS)
    joints = ros.recorder(probe, JointState, "/joint_states", RELIABLE)
    start = probe.create_publisher(EpisodeEvent, "/episode/events", EVENTS)
    wait_for(lambda: start.get_subscription_count() >= 2, 30.0, "the bridge's event subscription")
    count = len(joints)
    start.publish(EpisodeEvent(event=EpisodeEvent.START, episode_id="rt", task="PickCube-v1", seed=SEED))
    wait_for(lambda: any(e.event == EpisodeEvent.STOP for e in events), 60.0, "the end of the episode")
    stop = next(e for e in events if e.event == EpisodeEvent.STOP)
    assert stop.episode_id == "rt" and stop.steps == steps and stop.outcome == "timeout"
    after_reset = next(j for j in joints[count:])
    moved = np.abs(np.array(joints[-1].position[:7]) - np.array(after_reset.position[:7])).max()
    if with_policy:
        assert moved > 1e-3, "the policy's twists did not move the arm"
    else:
        assert moved < 1e-3, f"the arm moved {moved} rad without commands"
