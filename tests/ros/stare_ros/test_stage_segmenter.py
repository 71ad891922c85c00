"""stage_segmenter over real DDS: a real PickCube demo's joint states and gripper commands, streamed at
the control rate, give the stages the ROS-free ProprioSegmenter gives offline; bad samples (NaN, missing
finger joints) are reported and the node carries on from the last good stage."""

from __future__ import annotations

import time

import pytest
from diagnostic_msgs.msg import DiagnosticArray
from ros_harness import joint_msg, wait_for
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64

from stare_interfaces.msg import EpisodeEvent, StageState
from stare_policy.stages import ProprioSegmenter, stage_spec
from stare_ros.nodes.stage_segmenter import StageSegmenter
from stare_ros.ros_common import EVENTS, RELIABLE, to_stamp

pytestmark = pytest.mark.filterwarnings("ignore:module 'sre_:DeprecationWarning")
RATE_HZ = 20.0


def _stream(ros, samples, start_event: bool = True):
    """Publish (gripper, joint names, positions) samples at the control rate, stamped t = i / rate."""
    node = ros.node("robot")
    joints = node.create_publisher(JointState, "/joint_states", RELIABLE)
    gripper = node.create_publisher(Float64, "/gripper_command", RELIABLE)
    events = node.create_publisher(EpisodeEvent, "/episode/events", EVENTS)
    wait_for(lambda: joints.get_subscription_count() >= 1 and gripper.get_subscription_count() >= 1
             and events.get_subscription_count() >= 1, 15.0, "the segmenter's subscriptions")
    if start_event:
        events.publish(EpisodeEvent(event=EpisodeEvent.START, episode_id="e1", task="PickCube-v1"))
        time.sleep(0.1)
    for i, (g, names, q) in enumerate(samples):
        gripper.publish(Float64(data=float(g)))
        time.sleep(0.5 / RATE_HZ)
        joints.publish(joint_msg(q, to_stamp(1000.0 + i / RATE_HZ), names))
        time.sleep(0.5 / RATE_HZ)


def _transitions(stages):
    seen = []
    for s in stages:
        if s.confidence > 0 and (not seen or seen[-1] != s.stage_name):
            seen.append(s.stage_name)
    return seen


def test_stages_online_equal_the_offline_separator(ros, real_demos):
    episode = real_demos("PickCube-v1").episode(0)
    qpos, grip = episode.arrays["qpos"], episode.arrays["action"][:, 6]
    reference = ProprioSegmenter(stage_spec("PickCube-v1"))
    labels = [reference.step(q, g, 1000.0 + i / RATE_HZ) for i, (q, g) in enumerate(zip(qpos, grip))]
    names = stage_spec("PickCube-v1").names
    want = [names[k] for k in dict.fromkeys(labels)]
    assert len(want) >= 3, f"the demo should reach Transport at least, got {want}"

    ros.start(StageSegmenter, task="PickCube-v1", publish_rate_hz=1.0)
    probe = ros.node("probe")
    stages = ros.recorder(probe, StageState, "/stage_state")
    _stream(ros, [(g, None, q) for q, g in zip(qpos, grip)])
    wait_for(lambda: _transitions(stages) == want, 10.0, f"stages {want}")
    last = [s for s in stages if s.confidence > 0][-1]
    assert last.task == "PickCube-v1" and last.num_stages == len(names)
    # each stage's start stamp is the stamp of the sample that entered it
    entered = {names[k]: 1000.0 + labels.index(k) / RATE_HZ for k in dict.fromkeys(labels)}
    for s in stages:
        if s.confidence > 0:
            assert s.stage_start.sec + s.stage_start.nanosec * 1e-9 == pytest.approx(entered[s.stage_name], abs=1e-6)
    # without new samples the state is still published at the fixed rate
    count = len(stages)
    wait_for(lambda: len(stages) >= count + 2, 5.0, "periodic StageStates")
    assert all(s.stage_name == want[-1] for s in stages[count:])


def test_bad_joint_states_are_reported_and_skipped(ros, real_demos):
    episode = real_demos("PickCube-v1").episode(0)
    q0 = [float(v) for v in episode.arrays["qpos"][0]]
    ros.start(StageSegmenter, task="PickCube-v1")
    probe = ros.node("probe")
    stages = ros.recorder(probe, StageState, "/stage_state")
    diags = ros.recorder(probe, DiagnosticArray, "/diagnostics")
    arm = [f"panda_joint{i}" for i in range(1, 8)]
    samples = [(1.0, None, q0), (1.0, None, [float("nan")] * 9), (1.0, arm, q0[:7]), (1.0, None, q0)]
    _stream(ros, samples)
    wait_for(lambda: sum(s.event == "bad_input" for s in stages) >= 2, 10.0, "two bad_input StageStates")
    bad = [s for s in stages if s.event == "bad_input"]
    assert all(s.confidence == 0.0 and s.stage_name == "Reach" for s in bad)
    wait_for(lambda: len(diags) >= 2, 10.0, "diagnostics for the bad samples")
    messages = [st.message for d in diags for st in d.status]
    assert any("non-finite" in m for m in messages) and any("finger joint" in m for m in messages)
    wait_for(lambda: stages[-1].confidence == 1.0, 10.0, "a good sample after the bad ones")
    assert stages[-1].event == "" and stages[-1].stage_name == "Reach"
