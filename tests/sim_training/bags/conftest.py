"""One real sim-in-the-loop episode bag per test session, shared by the bag reader and export tests.

The real sim_bridge (ManiSkill3 PickCube-v1, lock-step), stage_segmenter and episode_logger run over
loopback DDS; a probe node plays the policy_server's part, answering every observation with the scripted
expert's next action as a PolicyAction (plus twist and gripper command) for that observation's stamp. The
same actions were first run on the bridge's own simulator directly (`reference`): what the bag must give
back. One simulator only, because building one takes tens of seconds on a loaded machine."""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "ros"))  # ros_harness

TASK = "PickCube-v1"
SEED = 1_000_000
MAX_STEPS = 40


@dataclass
class Reference:
    """The episode as the simulator produced it: the observation before each action, and the actions."""

    images: np.ndarray
    qpos: np.ndarray
    tcp_pose: np.ndarray
    goal: np.ndarray
    actions: np.ndarray
    outcome: str


@dataclass
class SimBag:
    bag: Path
    reference: Reference
    steps: int
    outcome: str
    stages: list[tuple[int, int]]
    """(stamp ns, stage index) of every StageState the segmenter published, as a live subscriber saw them."""


def _reference(robot) -> Reference:
    from sim_training.demos.scripted import script_for

    script = script_for(robot.spec)
    script.reset()
    obs, images, qpos, tcp, actions = robot.reset(SEED), [], [], [], []
    goal = obs.goal.astype(np.float32)
    while not obs.done:
        images.append(obs.image.copy())
        qpos.append(obs.qpos.astype(np.float32))
        tcp.append(robot.tcp_pose())
        actions.append(np.clip(script(robot.env), -1.0, 1.0).astype(np.float32))
        obs = robot.step(actions[-1])
    return Reference(np.stack(images), np.stack(qpos), np.stack(tcp), goal, np.stack(actions), obs.outcome)


@pytest.fixture(scope="session")
def sim_bag(tmp_path_factory) -> SimBag:
    root = tmp_path_factory.mktemp("sim-bag")
    (root / "ros_log").mkdir()
    with pytest.MonkeyPatch.context() as env:
        env.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        env.delenv("ROS_STATIC_PEERS", raising=False)
        env.delenv("ROS_LOCALHOST_ONLY", raising=False)
        env.setenv("ROS_DOMAIN_ID", str(102 + os.getpid() % 100))  # apart from tests/ros' 1..101
        env.setenv("ROS_LOG_DIR", str(root / "ros_log"))
        return _record(root / "bags")


def _record(out: Path) -> SimBag:
    from geometry_msgs.msg import TwistStamped
    from ros_harness import Graph, wait_for
    from sensor_msgs.msg import Image
    from std_msgs.msg import Float64

    from stare_interfaces.msg import EpisodeEvent, PolicyAction, StageState
    from stare_interfaces.srv import StartEpisode
    from stare_ros.config import PolicyServerConfig
    from stare_ros.conversions import action_to_twist
    from stare_ros.nodes.episode_logger import EpisodeLogger
    from stare_ros.nodes.sim_bridge import SimBridge
    from stare_ros.nodes.stage_segmenter import StageSegmenter
    from stare_ros.ros_common import EVENTS, RELIABLE

    graph = Graph()
    try:
        bridge = graph.start(SimBridge, task=TASK, mode="lockstep", max_episode_steps=MAX_STEPS,
                             lockstep_timeout_s=20.0)
        reference = _reference(bridge.robot)  # before any episode starts, so the bridge leaves its simulator be
        segmenter = graph.start(StageSegmenter, task=TASK)
        graph.start(EpisodeLogger, output_dir=str(out), checkpoint="scripted-expert")
        probe = graph.node("probe")
        events = graph.recorder(probe, EpisodeEvent, "/episode/events", EVENTS)
        stages = graph.recorder(probe, StageState, "/stage_state", RELIABLE)
        action_pub = probe.create_publisher(PolicyAction, "/policy_server/action", RELIABLE)
        twist_pub = probe.create_publisher(TwistStamped, "/servo_node/delta_twist_cmds", RELIABLE)
        gripper_pub = probe.create_publisher(Float64, "/gripper_command", RELIABLE)
        scales, answered = PolicyServerConfig(), []

        def act(image: Image) -> None:  # the policy_server's publishing order: gripper, twist, action
            action = reference.actions[min(len(answered), len(reference.actions) - 1)]
            answered.append(action)
            linear, angular = action_to_twist(action, 20.0, scales.pos_scale_m, scales.rot_scale_rad)
            twist = TwistStamped()
            twist.header.stamp, twist.header.frame_id = probe.get_clock().now().to_msg(), "panda_link0"
            twist.twist.linear.x, twist.twist.linear.y, twist.twist.linear.z = map(float, linear)
            twist.twist.angular.x, twist.twist.angular.y, twist.twist.angular.z = map(float, angular)
            msg = PolicyAction(observation_stamp=image.header.stamp, raw=action.tolist(), command=action.tolist())
            msg.header.stamp = twist.header.stamp
            gripper_pub.publish(Float64(data=float(action[6])))
            twist_pub.publish(twist)
            action_pub.publish(msg)

        probe.create_subscription(Image, "/camera/image_raw", act, RELIABLE)
        for pub, readers in ((action_pub, 2), (gripper_pub, 2), (twist_pub, 1), (bridge.image_pub, 2),
                             (bridge.joint_pub, 2), (segmenter.stage_pub, 2)):
            wait_for(lambda: pub.get_subscription_count() >= readers, 30.0, f"{readers} readers of {pub.topic_name}")
        response = graph.call(probe, StartEpisode, "/episode/start", StartEpisode.Request(task=TASK, seed=SEED))
        assert response.success, response.message
        wait_for(lambda: any(e.event == EpisodeEvent.SAVED for e in events), 120.0, "the episode's bag")
        stop = next(e for e in events if e.event == EpisodeEvent.STOP)
        saved = next(e for e in events if e.event == EpisodeEvent.SAVED)
        stage_log = [(s.header.stamp.sec * 10**9 + s.header.stamp.nanosec, s.stage_index) for s in stages]
        return SimBag(Path(saved.bag_path), reference, stop.steps, stop.outcome, stage_log)
    finally:
        graph.close()
