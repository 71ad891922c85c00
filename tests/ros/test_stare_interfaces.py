"""stare_interfaces: live pub/sub through rclpy and a rosbags MCAP round trip.

Needs the ROS 2 Jazzy wheels and the built interface package in the running venv:
    scripts/setup/ros.sh <venv>
"""

from __future__ import annotations

import json
import sysconfig
import time
from pathlib import Path

import pytest

# lark (used by the rosidl parser that rclpy imports) uses deprecated stdlib modules.
pytestmark = pytest.mark.filterwarnings("ignore:module 'sre_:DeprecationWarning")

REPO_ROOT = Path(__file__).resolve().parents[2]
MSG_DIR = REPO_ROOT / "ros2_ws" / "src" / "stare_interfaces" / "msg"
TOPIC = "/stare/test/stage_state"
MATCH_TIMEOUT_S = 15.0  # discovery is usually < 0.5 s, sometimes ~3 s
RECEIVE_TIMEOUT_S = 10.0
SPIN_STEP_S = 0.05
MAX_SPINS = 1000  # hard cap on loop iterations, independent of the clock


def _import_or_fail(module: str):
    """Import a ROS module; a missing one is a broken setup, so the test fails rather than skips."""
    try:
        return __import__(module, fromlist=["_"])
    except ImportError as exc:
        pytest.fail(f"{module} unavailable ({exc}); the setup (scripts/setup/ros.sh <venv>) is broken")


def _sample_rclpy_msg():
    from builtin_interfaces.msg import Time
    from stare_interfaces.msg import StageState
    from std_msgs.msg import Header

    return StageState(
        header=Header(stamp=Time(sec=1_700_000_000, nanosec=123_456_789), frame_id="base_link"),
        task="put the red block in the bowl",
        stage_index=2,
        stage_name="place",
        num_stages=4,
        stage_start=Time(sec=1_699_999_998, nanosec=5),
        confidence=0.75,  # exactly representable as float32
        regressed=True,
        event="grasp_lost",
    )


def _assert_same_stage_state(got, want) -> None:
    assert got.header.stamp.sec == want.header.stamp.sec
    assert got.header.stamp.nanosec == want.header.stamp.nanosec
    assert got.header.frame_id == want.header.frame_id
    assert got.task == want.task
    assert got.stage_index == want.stage_index
    assert got.stage_name == want.stage_name
    assert got.num_stages == want.num_stages
    assert got.stage_start.sec == want.stage_start.sec
    assert got.stage_start.nanosec == want.stage_start.nanosec
    assert got.confidence == pytest.approx(want.confidence)
    assert got.regressed == want.regressed
    assert got.event == want.event


def _spin_until(executor, done, timeout_s: float) -> bool:
    """Spin until done() or timeout_s elapsed; bounded in time and iterations."""
    deadline = time.monotonic() + timeout_s
    for _ in range(MAX_SPINS):
        if done():
            return True
        if time.monotonic() >= deadline:
            break
        executor.spin_once(timeout_sec=SPIN_STEP_S)
    return done()


def test_stage_state_pub_sub(ros_isolation: int) -> None:
    rclpy = _import_or_fail("rclpy")
    _import_or_fail("stare_interfaces.msg")
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from stare_interfaces.msg import StageState

    context = rclpy.context.Context()
    rclpy.init(context=context)
    executor = None
    nodes = []
    try:
        assert context.get_domain_id() == ros_isolation
        qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
        pub_node = rclpy.create_node("stage_state_test_pub", context=context)
        sub_node = rclpy.create_node("stage_state_test_sub", context=context)
        nodes = [pub_node, sub_node]
        received: list = []
        sub_node.create_subscription(StageState, TOPIC, received.append, qos)
        publisher = pub_node.create_publisher(StageState, TOPIC, qos)
        executor = SingleThreadedExecutor(context=context)
        for node in nodes:
            executor.add_node(node)

        matched = _spin_until(executor, lambda: publisher.get_subscription_count() >= 1, MATCH_TIMEOUT_S)
        assert matched, f"subscriber not matched within {MATCH_TIMEOUT_S} s"

        sent = _sample_rclpy_msg()
        publisher.publish(sent)
        assert _spin_until(executor, lambda: len(received) >= 1, RECEIVE_TIMEOUT_S), (
            f"StageState not received within {RECEIVE_TIMEOUT_S} s"
        )
        assert len(received) == 1
        got = received[0]
        assert isinstance(got, StageState)
        _assert_same_stage_state(got, sent)
        assert got == sent
    finally:
        if executor is not None:
            executor.shutdown(timeout_sec=1.0)
        for node in nodes:
            node.destroy_node()
        rclpy.try_shutdown(context=context)


def _typestore_with_stare_types():
    typesys = _import_or_fail("rosbags.typesys")
    typestore = typesys.get_typestore(typesys.Stores.ROS2_JAZZY)
    types: dict = {}
    msg_files = sorted(MSG_DIR.glob("*.msg"))
    assert msg_files, f"no .msg files in {MSG_DIR}"
    for path in msg_files:
        types.update(typesys.get_types_from_msg(path.read_text(), f"stare_interfaces/msg/{path.stem}"))
    typestore.register(types)
    return typestore


def test_stage_state_rosbags_mcap_round_trip(tmp_path: Path) -> None:
    rosbag2 = _import_or_fail("rosbags.rosbag2")
    typestore = _typestore_with_stare_types()
    msgtype = "stare_interfaces/msg/StageState"
    StageState = typestore.types[msgtype]
    Header = typestore.types["std_msgs/msg/Header"]
    Time = typestore.types["builtin_interfaces/msg/Time"]

    sent = [
        StageState(
            header=Header(stamp=Time(sec=1_700_000_000 + i, nanosec=1000 * i), frame_id="base_link"),
            task="put the red block in the bowl",
            stage_index=i,
            stage_name=f"stage_{i}",
            num_stages=3,
            stage_start=Time(sec=1_700_000_000, nanosec=0),
            confidence=0.25 * (i + 1),
            regressed=(i == 2),
            event="bad_input" if i == 1 else "",
        )
        for i in range(3)
    ]
    bag = tmp_path / "stage_bag"
    with rosbag2.Writer(bag, version=9, storage_plugin=rosbag2.StoragePlugin.MCAP) as writer:
        conn = writer.add_connection(TOPIC, msgtype, typestore=typestore)
        for msg in sent:
            stamp_ns = msg.header.stamp.sec * 1_000_000_000 + msg.header.stamp.nanosec
            writer.write(conn, stamp_ns, typestore.serialize_cdr(msg, msgtype))
    assert list(bag.glob("*.mcap")), "no MCAP file written"

    raw: list[bytes] = []
    with rosbag2.Reader(bag) as reader:
        assert reader.message_count == len(sent)
        conns = [c for c in reader.connections if c.topic == TOPIC]
        assert len(conns) == 1 and conns[0].msgtype == msgtype
        for _conn, _stamp, data in reader.messages(connections=conns):
            raw.append(data)
            assert len(raw) <= len(sent), "more messages read than written"
    got = [typestore.deserialize_cdr(data, msgtype) for data in raw]
    for g, want in zip(got, sent, strict=True):
        _assert_same_stage_state(g, want)

    # If the interface package is built, the bag's bytes must also be valid for
    # rclpy's type, and rosbags' type hash must equal the one rosidl generated.
    try:
        from rclpy.serialization import deserialize_message
        from stare_interfaces.msg import StageState as RclpyStageState
    except ImportError:
        return
    for data, want in zip(raw, sent, strict=True):
        _assert_same_stage_state(deserialize_message(data, RclpyStageState), want)

    # Installed into the venv prefix by scripts/setup/ros.sh (AMENT_PREFIX_PATH is not set here).
    share = Path(sysconfig.get_path("data")) / "share" / "stare_interfaces"
    description = json.loads((share / "msg" / "StageState.json").read_text())
    rosidl_hash = next(h["hash_string"] for h in description["type_hashes"] if h["type_name"] == msgtype)
    assert typestore.hash_rihs01(msgtype) == rosidl_hash
