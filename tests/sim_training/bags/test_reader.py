"""Episode bags written by the real episode_logger, read back: the round trip against what the simulator
produced, killed and cut bags, wrong and missing topics, empty bags, bags without outcome or metadata."""

from __future__ import annotations

import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import SEED, TASK

from sim_training.bags import BagError, BagReaderConfig, read_bag, read_bags

pytestmark = pytest.mark.filterwarnings("ignore:module 'sre_:DeprecationWarning")


@pytest.fixture(scope="module")
def episode(sim_bag):
    return read_bag(sim_bag.bag)


def _bag_messages(bag: Path) -> list[tuple[str, str, int, bytes]]:
    from rosbags.rosbag2 import Reader

    with Reader(bag) as reader:
        return [(c.topic, c.msgtype, t, bytes(d)) for c, t, d in reader.messages()]


def _write_bag(path: Path, messages, storage: str = "mcap", custom: dict | None = None) -> Path:
    """A bag as `ros2 bag record` would write it: the messages, no STARE metadata."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    from stare_ros.recorder import typestore

    store = typestore()
    writer = Writer(path, version=9, storage_plugin=StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3)
    writer.open()
    connections = {}
    for topic, msgtype, stamp, data in messages:
        if topic not in connections:
            connections[topic] = writer.add_connection(topic, msgtype, typestore=store)
        writer.write(connections[topic], stamp, data)
    for key, value in (custom or {}).items():
        writer.set_custom_data(key, value)
    writer.close()
    return path


def test_logger_bag_reads_back_as_the_simulated_episode(sim_bag, episode):
    ref = sim_bag.reference
    assert sim_bag.outcome == ref.outcome == "success" and sim_bag.steps == len(ref.actions)
    assert len(episode) == len(ref.actions)  # the answer to the final observation is not a step
    np.testing.assert_array_equal(episode.arrays["image"], ref.images)
    np.testing.assert_array_equal(episode.arrays["qpos"], ref.qpos)
    np.testing.assert_array_equal(episode.arrays["action"], ref.actions)
    np.testing.assert_array_equal(episode.arrays["raw_action"], ref.actions)
    np.testing.assert_allclose(episode.arrays["tcp_pose"], ref.tcp_pose, atol=1e-4)  # FK of the joint states
    np.testing.assert_allclose(episode.arrays["goal_pos"], np.tile(ref.goal, (len(ref.actions), 1)), atol=1e-6)
    assert episode.arrays["flag.success"].tolist() == [False] * (len(episode) - 1) + [True]
    assert episode.seed == SEED and episode.success
    assert episode.instruction == "pick up the red cube and move it to the green goal"
    extra = episode.extra
    assert extra["task"] == TASK and extra["outcome"] == "success" and not extra["truncated"]
    assert extra["checkpoint"] == "scripted-expert" and extra["episode_id"] == sim_bag.bag.name
    assert extra["stage_names"] == ["Reach", "Grasp", "Transport", "Settle"] and extra["stage_source"] == "stage_state"
    episode.validate()


def test_stage_labels_are_the_segmenters_at_each_observation(sim_bag, episode):
    stamps = episode.arrays["stamp_ns"]
    assert np.all(np.diff(stamps) > 0)
    live = sorted(sim_bag.stages, key=lambda s: s[0])
    want = [max((s for s in live if s[0] <= t), default=(0, -1), key=lambda s: s[0])[1] for t in stamps]
    assert episode.arrays["stage"].tolist() == want
    assert want[0] == 0 and max(want) >= 1, f"the scripted grasp should reach Grasp: {want}"
    assert [s["name"] for s in episode.extra["stage_timeline"]][:2] == ["Reach", "Grasp"]


def test_killed_logger_bag_gives_the_episode_up_to_its_last_complete_tick(sim_bag, episode, tmp_path):
    """The recorder process is SIGKILLed after the last message, before it closes the bag."""
    from stare_ros.recorder import repair_bag

    messages = tmp_path / "messages.pkl"
    messages.write_bytes(pickle.dumps(_bag_messages(sim_bag.bag)))
    script = (
        "import os, pickle, signal, sys\n"
        "from stare_ros.recorder import EpisodeInfo, EpisodeRecorder\n"
        "messages = pickle.load(open(sys.argv[1], 'rb'))\n"
        "recorder = EpisodeRecorder(sys.argv[2], {topic: msgtype for topic, msgtype, _, _ in messages})\n"
        f"recorder.start(EpisodeInfo('killed', '{TASK}', '', '', {SEED}, messages[0][2]))\n"
        "for topic, _, stamp, data in messages:\n"
        "    recorder.write(topic, stamp, data)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n")
    proc = subprocess.run([sys.executable, "-c", script, str(messages), str(tmp_path / "out")], timeout=120)
    assert proc.returncode == -9
    bag = tmp_path / "out" / "killed"
    assert not (bag / "metadata.yaml").exists()

    killed = read_bag(bag)
    assert 0 < len(killed) < len(episode), "one complete 1 MiB chunk of the ~1.2 MB bag survives"
    assert killed.extra["truncated"] and killed.extra["outcome"] == "killed" and not killed.success
    assert killed.seed == SEED and killed.extra["task"] == TASK
    for key in ("image", "qpos", "action", "stage", "stamp_ns"):
        np.testing.assert_array_equal(killed.arrays[key], episode.arrays[key][:len(killed)])

    repair_bag(bag)
    repaired = read_bag(bag)
    assert repaired.extra["truncated"] and repaired.extra["outcome"] == "killed"
    np.testing.assert_array_equal(repaired.arrays["image"], killed.arrays["image"])


def test_a_bag_cut_short_is_read_to_its_last_complete_chunk(sim_bag, episode, tmp_path):
    bag = Path(shutil.copytree(sim_bag.bag, tmp_path / "cut"))
    (mcap,) = bag.glob("*.mcap")
    data = mcap.read_bytes()
    mcap.write_bytes(data[:int(len(data) * 0.95)])
    cut = read_bag(bag)
    assert cut.extra["truncated"] and 0 < len(cut) < len(episode)
    np.testing.assert_array_equal(cut.arrays["qpos"], episode.arrays["qpos"][:len(cut)])


def test_a_bag_without_metadata_or_outcome_needs_a_task_and_reads_as_outcome_unknown(sim_bag, episode, tmp_path):
    """`ros2 bag record` of the same topics in sqlite3 storage: no custom_data, no episode events."""
    messages = [m for m in _bag_messages(sim_bag.bag) if m[0] != "/episode/events"]
    bag = _write_bag(tmp_path / "recorded", messages, storage="sqlite3")
    with pytest.raises(BagError, match=r"recorded: no task"):
        read_bag(bag)
    plain = read_bag(bag, BagReaderConfig(task=TASK))
    assert plain.extra["outcome"] == "unknown" and not plain.success and plain.seed == -1
    assert not plain.extra["truncated"]
    # Without the episode's step count the answer to the final observation counts as a step too.
    assert len(plain) == len(episode) + 1
    np.testing.assert_array_equal(plain.arrays["image"][:-1], episode.arrays["image"])
    np.testing.assert_array_equal(plain.arrays["stage"][:-1], episode.arrays["stage"])


def test_a_bag_without_policy_actions_or_stage_states_uses_twists_and_segments_offline(sim_bag, episode, tmp_path):
    from stare_policy.stages import ProprioSegmenter, stage_spec

    skip = ("/policy_server/action", "/stage_state")
    bag = _write_bag(tmp_path / "teleop.mcap", [m for m in _bag_messages(sim_bag.bag) if m[0] not in skip],
                     custom={"stare.task": TASK, "stare.outcome": "success", "stare.steps": str(sim_bag.steps)})
    teleop = read_bag(bag)
    assert len(teleop) == len(episode) and teleop.extra["stage_source"] == "offline"
    np.testing.assert_allclose(teleop.arrays["action"], episode.arrays["action"], atol=1e-5)
    assert np.isnan(teleop.arrays["raw_action"]).all()
    segmenter = ProprioSegmenter(stage_spec(TASK))
    gripper = np.r_[1.0, teleop.arrays["action"][:-1, 6]]
    want = [segmenter.step(q.tolist(), float(g), t * 1e-9)
            for q, g, t in zip(teleop.arrays["qpos"], gripper, teleop.arrays["stamp_ns"])]
    assert teleop.arrays["stage"].tolist() == want


def test_wrong_message_types_and_missing_topics_name_the_bag_and_the_topic(sim_bag, tmp_path):
    messages = _bag_messages(sim_bag.bag)
    string = next(m for m in messages if m[1] == "std_msgs/msg/String")  # the instruction
    renamed = [("/joint_states", string[1], t, string[3]) if topic == "/joint_states" else (topic, msgtype, t, d)
               for topic, msgtype, t, d in messages]
    bag = _write_bag(tmp_path / "wrong-type", renamed)
    with pytest.raises(BagError, match=r"wrong-type: topic /joint_states is std_msgs/msg/String, "
                                       r"expected sensor_msgs/msg/JointState"):
        read_bag(bag)
    bag = _write_bag(tmp_path / "no-joints", [m for m in messages if m[0] != "/joint_states"])
    with pytest.raises(BagError, match=r"no-joints: missing required topic\(s\) /joint_states"):
        read_bag(bag)


def test_empty_and_unreadable_bags_are_skipped_with_their_reason(sim_bag, tmp_path):
    from stare_ros.config import DEFAULT_RECORDED
    from stare_ros.recorder import EpisodeInfo, EpisodeRecorder

    recorder = EpisodeRecorder(tmp_path / "bags", dict(entry.split(":", 1) for entry in DEFAULT_RECORDED))
    recorder.start(EpisodeInfo("empty", TASK, "", "", 1, 0))
    recorder.stop("aborted")
    with pytest.raises(BagError, match=r"empty: empty bag"):
        read_bag(tmp_path / "bags" / "empty")
    (tmp_path / "bags" / "garbage").mkdir()
    (tmp_path / "bags" / "garbage" / "garbage.mcap").write_bytes(b"not a bag")
    shutil.copytree(sim_bag.bag, tmp_path / "bags" / "good")
    result = read_bags([tmp_path / "bags"])
    assert [e.extra["episode_id"] for e in result.episodes] == [sim_bag.bag.name]
    reasons = {Path(s.bag).name: s.reason for s in result.skipped}
    assert set(reasons) == {"empty", "garbage"}
    assert reasons["empty"].startswith("empty bag") and "not an MCAP file" in reasons["garbage"]
    with pytest.raises(BagError, match="no such file"):
        read_bag(tmp_path / "missing")


def test_vectorised_tcp_pose_equals_the_policy_servers():
    from sim_training.bags.tcp import tcp_poses
    from stare_ros.config import PolicyServerConfig
    from stare_ros.conversions import TcpPose

    base = PolicyServerConfig().base_pose
    q = np.random.default_rng(0).uniform(-2.8, 2.8, (500, 7))
    tcp = TcpPose(base)
    want = np.stack([tcp.world(row) for row in q])
    np.testing.assert_array_equal(tcp_poses(q, base), want)
