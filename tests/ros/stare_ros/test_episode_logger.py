"""episode_logger over real DDS: episodes by service and by STOP event, one MCAP bag each, read back
with rosbags (and rclpy's deserializer), every message published during the episode recorded."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from ros_harness import bag_custom_data, image_msg, joint_msg, wait_for
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import Image, JointState

from stare_interfaces.msg import EpisodeEvent, StageState
from stare_interfaces.srv import EndEpisode, StartEpisode
from stare_ros.nodes.episode_logger import EpisodeLogger
from stare_ros.ros_common import EVENTS, RELIABLE

pytestmark = pytest.mark.filterwarnings("ignore:module 'sre_:DeprecationWarning")


def _read(bag):
    from rosbags.rosbag2 import Reader

    with Reader(bag) as reader:
        return [(c.topic, c.msgtype, t, bytes(d)) for c, t, d in reader.messages()]


def test_episode_by_service_records_everything_published(ros, tmp_path):
    ros.start(EpisodeLogger, output_dir=str(tmp_path), checkpoint="ckpt-x", task="PickCube-v1")
    robot = ros.node("robot")
    images = robot.create_publisher(Image, "/camera/image_raw", RELIABLE)
    joints = robot.create_publisher(JointState, "/joint_states", RELIABLE)
    stages = robot.create_publisher(StageState, "/stage_state", RELIABLE)
    wait_for(lambda: images.get_subscription_count() and joints.get_subscription_count()
             and stages.get_subscription_count(), 15.0, "the logger's subscriptions")
    start = ros.call(robot, StartEpisode, "/episode/start",
                     StartEpisode.Request(instruction="pick up the red cube", seed=7))
    assert start.success, start.message

    # the segmenter's last word on the previous episode, arriving after the start: recorded, not counted
    stale = StageState(task="PickCube-v1", stage_index=3, stage_name="Settle", num_stages=4, confidence=1.0)
    stale.stage_start.sec = 1
    stages.publish(stale)
    sent_stale = 1
    # 1 s of 30 Hz 224x224 images, 100 Hz joint states and stage changes
    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (224, 224, 3), np.uint8)
    sent = {"/camera/image_raw": 0, "/joint_states": 0, "/stage_state": 0}
    t0 = time.monotonic()
    for i in range(100):
        stamp = robot.get_clock().now().to_msg()
        joints.publish(joint_msg([0.01 * i] * 9, stamp))
        sent["/joint_states"] += 1
        if i % 3 == 0:
            images.publish(image_msg(frame, stamp))
            sent["/camera/image_raw"] += 1
        if i in (0, 40, 80):
            stages.publish(StageState(task="PickCube-v1", stage_index=i // 40, stage_name=["Reach", "Grasp", "Transport"][i // 40],
                                      num_stages=4, confidence=1.0))
            sent["/stage_state"] += 1
        time.sleep(max(0.0, t0 + (i + 1) * 0.01 - time.monotonic()))
    logger = ros.nodes[0]
    wait_for(lambda: all(logger.recorder.info.messages.get(k, 0) >= n for k, n in sent.items()), 10.0,
             "every message in the logger")
    end = ros.call(robot, EndEpisode, "/episode/end", EndEpisode.Request(outcome="success"))
    assert end.success and end.bag_path.endswith(start.episode_id)

    sent["/stage_state"] += sent_stale
    messages = _read(end.bag_path)
    counts = {topic: sum(m[0] == topic for m in messages) for topic in sent}
    assert counts == sent, "dropped or duplicated messages"
    first_joint = next(m for m in messages if m[0] == "/joint_states")
    assert list(deserialize_message(first_joint[3], JointState).position) == [0.0] * 9
    image = deserialize_message(next(m for m in messages if m[0] == "/camera/image_raw")[3], Image)
    assert bytes(image.data) == frame.tobytes()
    events = [deserialize_message(m[3], EpisodeEvent) for m in messages if m[0] == "/episode/events"]
    assert [e.event for e in events] == [EpisodeEvent.START, EpisodeEvent.STOP] and events[1].outcome == "success"
    custom = bag_custom_data(end.bag_path)
    assert custom["stare.checkpoint"] == "ckpt-x" and custom["stare.task"] == "PickCube-v1"
    assert custom["stare.outcome"] == "success" and custom["stare.seed"] == "7"
    assert [s["name"] for s in json.loads(custom["stare.stages"])] == ["Reach", "Grasp", "Transport"]
    index = [json.loads(line) for line in (tmp_path / "episodes.jsonl").read_text().splitlines()]
    assert len(index) == 1 and index[0]["bag"] == end.bag_path and index[0]["instruction"] == "pick up the red cube"


def test_stop_event_closes_the_bag_and_a_new_start_opens_the_next(ros, tmp_path):
    ros.start(EpisodeLogger, output_dir=str(tmp_path))
    robot = ros.node("robot")
    events_pub = robot.create_publisher(EpisodeEvent, "/episode/events", EVENTS)
    events = ros.recorder(robot, EpisodeEvent, "/episode/events", EVENTS)
    bags = []
    for n in range(2):
        start = ros.call(robot, StartEpisode, "/episode/start", StartEpisode.Request(seed=n))
        assert start.success
        wait_for(lambda: events_pub.get_subscription_count() >= 1, 15.0, "the logger's event subscription")
        events_pub.publish(EpisodeEvent(event=EpisodeEvent.STOP, episode_id=start.episode_id, outcome="timeout",
                                        steps=5))
        wait_for(lambda: any(e.event == EpisodeEvent.SAVED and e.episode_id == start.episode_id for e in events),
                 10.0, "the SAVED event")
        saved = next(e for e in events if e.event == EpisodeEvent.SAVED and e.episode_id == start.episode_id)
        assert saved.outcome == "timeout" and saved.steps == 5
        bags.append(saved.bag_path)
    assert len(set(bags)) == 2
    for bag in bags:
        assert bag_custom_data(bag)["stare.outcome"] == "timeout"
        assert [t for t, *_ in _read(bag)].count("/episode/events") == 2
    end = ros.call(robot, EndEpisode, "/episode/end", EndEpisode.Request(outcome="success"))
    assert not end.success and "no episode" in end.message


def test_a_killed_logger_loses_at_most_the_chunk_being_filled(ros, tmp_path):
    """kill -9 mid-episode: `repair_bag` recovers every message of the complete MCAP chunks, an exact
    prefix of what was sent; the loss is bounded by rosbags' 1 MiB chunk."""
    import os
    import signal
    import subprocess
    import sys

    from stare_ros.recorder import repair_bag

    env = dict(os.environ)
    proc = subprocess.Popen([sys.executable, "-m", "stare_ros.nodes.episode_logger", "--ros-args",
                             "-p", f"output_dir:={tmp_path}"], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        robot = ros.node("robot")
        images = robot.create_publisher(Image, "/camera/image_raw", RELIABLE)
        start = ros.call(robot, StartEpisode, "/episode/start", StartEpisode.Request(seed=3), timeout_s=60.0,
                         wait_s=90.0)
        assert start.success
        wait_for(lambda: images.get_subscription_count() >= 1, 15.0, "the logger's image subscription")
        frames = [np.full((224, 224, 3), i, np.uint8) for i in range(40)]  # 150 KB each: 6 MB, ~6 chunks
        for frame in frames:
            images.publish(image_msg(frame, robot.get_clock().now().to_msg()))
            time.sleep(0.02)
        # Let the logger take everything (it may lag on a busy machine): wait until its file holds all but
        # the chunk being filled, or stops growing for 5 s. Only that chunk may then be lost.
        mcap = tmp_path / start.episode_id / f"{start.episode_id}.mcap"
        expected = len(frames) * frames[0].nbytes - (1 << 20)
        sizes, deadline = [], time.monotonic() + 60.0
        while time.monotonic() < deadline:
            sizes.append(mcap.stat().st_size if mcap.exists() else 0)
            if sizes[-1] >= expected or (len(sizes) > 50 and sizes[-1] == sizes[-51]):
                break
            time.sleep(0.1)
        time.sleep(0.5)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        # a SIGKILLed Fast DDS participant leaves its shared-memory segments behind
        fastdds = os.path.join(os.path.dirname(sys.executable), "fastdds")
        if os.path.exists(fastdds):
            subprocess.run([fastdds, "shm", "clean"], capture_output=True, timeout=60)
    bag = tmp_path / start.episode_id
    assert not (bag / "metadata.yaml").exists()
    recovered = repair_bag(bag)
    got = [deserialize_message(d, Image) for t, _, _, d in _read(bag) if t == "/camera/image_raw"]
    assert recovered >= 2 and len(got) >= 30, f"only {len(got)} of 40 images recovered"
    lost_bytes = (len(frames) - len(got)) * frames[0].nbytes
    assert lost_bytes <= 1 << 20, f"lost {lost_bytes} bytes, more than one 1 MiB chunk"
    assert [bytes(m.data) for m in got] == [f.tobytes() for f in frames[:len(got)]]
    custom = bag_custom_data(bag)
    assert custom["stare.outcome"] == "killed" and custom["stare.episode_id"] == start.episode_id
    assert (bag / f"{bag.name}.mcap.killed").is_file()


def test_sigterm_closes_the_open_bag_and_exits_0(ros, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "stare_ros.nodes.episode_logger", "--ros-args",
                             "-p", f"output_dir:={tmp_path}"], env=dict(os.environ), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        robot = ros.node("robot")
        start = ros.call(robot, StartEpisode, "/episode/start", StartEpisode.Request(seed=1), timeout_s=60.0,
                         wait_s=90.0)
        assert start.success
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, proc.stdout.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert bag_custom_data(tmp_path / start.episode_id)["stare.outcome"] == "aborted"
    assert [t for t, *_ in _read(tmp_path / start.episode_id)] == ["/episode/events"]
