"""Faults injected into a real episode_logger process while a real publisher streams 30 Hz 224x224 images
and 100 Hz joint states (issue 8, item 4): SIGKILL, SIGTERM, SIGINT at random moments, and a file-size
limit (RLIMIT_FSIZE). Shared by tests/ros/stare_ros/test_episode_logger_crash.py (a bounded sample) and
benchmarks/crash_safety.py (the long run).

Every message carries its sequence number (joint position 0, the image's first 8 bytes), so a bag's
contents can be compared with what was sent: per topic an unbroken run, and what is missing at its end.
"Received" is not observable from outside the logger: a message counts as received when it was sent
`IN_FLIGHT_S` or more before the fault, or longer than the slowest delivery (publisher's stamp -> the
logger's receive time) among the messages in the bag (delivery takes ~1 ms unloaded; tens of ms on a
loaded 2-core machine). The loss counting every message sent before the fault is reported too."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

IN_FLIGHT_S = 0.05
IMAGE_HZ, JOINT_HZ = 30, 100
CHUNK_BYTES = 1 << 20
"""The documented bound for a killed logger: the chunk being filled (`rosbags`' MCAP chunk size)."""
IMAGE, JOINTS = "/camera/image_raw", "/joint_states"


@dataclass
class Trial:
    fault: str
    after_s: float
    """When the fault came, seconds after the episode's start was requested (SIGKILL) or granted."""
    exit_code: int | None = None
    bags: int = 0
    opened: int = 0
    repaired: int = 0
    contiguous: bool = True
    """Every topic's messages in every bag are an unbroken run of those sent, in order."""
    lost_bytes: int = 0
    """Bytes sent to the open episode before the fault, earlier than the in-flight window, missing from its bag."""
    lost_msgs: int = 0
    lost_bytes_in_flight: int = 0
    """The same, counting everything sent before the fault."""
    recorded: int = 0
    delivery_max_ms: float = 0.0
    """The slowest delivery (publisher's stamp -> the logger's receive time) among the recorded messages."""
    fsize_limit: int = 0
    alive: bool | None = None
    """RLIMIT_FSIZE: the node still running after the error."""
    reported: bool | None = None
    """RLIMIT_FSIZE: an ERROR log line and a SAVED event with outcome 'write_error'."""
    next_episode: bool | None = None
    """RLIMIT_FSIZE: the next episode recorded into a readable bag."""
    problems: list[str] = field(default_factory=list)

    @property
    def survived(self) -> bool:
        return not self.problems


class Streamer:
    """Publishes images and joint states at their rates from a thread; remembers when each was sent."""

    def __init__(self, node):
        from rclpy.serialization import serialize_message
        from ros_harness import image_msg, joint_msg
        from sensor_msgs.msg import Image, JointState

        from stare_ros.ros_common import RECORD

        self.node, self.image_msg, self.joint_msg = node, image_msg, joint_msg
        self.pubs = {IMAGE: node.create_publisher(Image, IMAGE, RECORD),
                     JOINTS: node.create_publisher(JointState, JOINTS, RECORD)}
        self.frame = np.random.default_rng(0).integers(0, 255, (224, 224, 3), np.uint8)
        self.size = {IMAGE: len(serialize_message(self._image(0))), JOINTS: len(serialize_message(self._joints(0)))}
        self.sent: dict[str, list[float]] = {IMAGE: [], JOINTS: []}
        """Per topic, the monotonic time each message was sent (its index is its sequence number)."""
        self.images = True
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _image(self, seq: int):
        frame = self.frame.copy()
        frame.reshape(-1)[:8] = np.frombuffer(seq.to_bytes(8, "little"), np.uint8)
        return self.image_msg(frame, self.node.get_clock().now().to_msg())

    def _joints(self, seq: int):
        return self.joint_msg([float(seq)] + [0.0] * 8, self.node.get_clock().now().to_msg())

    def matched(self) -> bool:
        return all(p.get_subscription_count() >= 1 for p in self.pubs.values())

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        period, tick, t0 = 1.0 / JOINT_HZ, 0, time.monotonic()
        while not self._stop.is_set():
            for topic, make in ((JOINTS, self._joints), (IMAGE, self._image)):
                if topic == IMAGE and (not self.images or tick % round(JOINT_HZ / IMAGE_HZ)):
                    continue
                seq = len(self.sent[topic])
                msg = make(seq)
                self.sent[topic].append(time.monotonic())
                self.pubs[topic].publish(msg)
            tick += 1
            time.sleep(max(0.0, t0 + tick * period - time.monotonic()))

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def sequence(topic: str, data: bytes) -> int:
    from rclpy.serialization import deserialize_message
    from sensor_msgs.msg import Image, JointState

    if topic == IMAGE:
        return int.from_bytes(bytes(deserialize_message(data, Image).data[:8]), "little")
    return int(deserialize_message(data, JointState).position[0])


def read_bag(bag: Path, delivery: list[float] | None = None) -> dict[str, list[int]]:
    """Sequence numbers per streamed topic, in bag order (raises if the bag does not open); `delivery`
    collects each message's delivery time in ms (its stamp -> the logger's receive time, both ROS time)."""
    from rclpy.serialization import deserialize_message
    from rosbags.rosbag2 import Reader
    from std_msgs.msg import Header

    seqs: dict[str, list[int]] = {IMAGE: [], JOINTS: []}
    with Reader(bag) as reader:
        for connection, received_ns, data in reader.messages():
            if connection.topic in seqs:
                data = bytes(data)
                seqs[connection.topic].append(sequence(connection.topic, data))
                if delivery is not None:  # the header leads both messages
                    stamp = deserialize_message(data, Header).stamp
                    delivery.append((received_ns - stamp.sec * 10**9 - stamp.nanosec) * 1e-6)
    return seqs


def _clean_shm() -> None:
    """A SIGKILLed Fast DDS participant leaves its shared-memory segments behind."""
    fastdds = os.path.join(os.path.dirname(sys.executable), "fastdds")
    if os.path.exists(fastdds):
        subprocess.run([fastdds, "shm", "clean"], capture_output=True, timeout=60)


class LoggerProcess:
    """`python -m stare_ros.nodes.episode_logger` in its own ROS domain, log to a file."""

    def __init__(self, output_dir: Path, log: Path, fsize_limit: int | None = None):
        def limit() -> None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize_limit, fsize_limit))

        self.log = log
        with open(log, "wb") as sink:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "stare_ros.nodes.episode_logger", "--ros-args", "-p", f"output_dir:={output_dir}"],
                env=dict(os.environ), stdout=sink, stderr=subprocess.STDOUT,
                preexec_fn=limit if fsize_limit else None)

    def signal(self, sig: int) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(timeout=60)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def run_trial(fault: str, root: Path, domain_id: int, rng: np.random.Generator, within_s: float = 2.0,
              fsize_limit: int = 3_000_000) -> Trial:
    """One logger process, one fault. `fault`: SIGKILL (at a random moment from the start request on, so
    some land while the bag is being opened), SIGTERM / SIGINT (at a random moment of an open episode),
    RLIMIT_FSIZE (the images outgrow `fsize_limit`; then a second episode and a SIGTERM)."""
    from ros_harness import Graph, wait_for

    from stare_interfaces.msg import EpisodeEvent
    from stare_interfaces.srv import StartEpisode
    from stare_ros.ros_common import EVENTS

    out, previous = root / "bags", os.environ.get("ROS_DOMAIN_ID")
    out.mkdir(parents=True)
    os.environ["ROS_DOMAIN_ID"] = str(domain_id)  # a fresh domain: no endpoint of an earlier, killed logger
    graph = logger = streamer = None
    trial = Trial(fault, float(rng.uniform(0.0, within_s)), fsize_limit=fsize_limit if fault == "RLIMIT_FSIZE" else 0)
    try:
        graph = Graph()
        robot = graph.node("robot")
        streamer = Streamer(robot)
        events = graph.recorder(robot, EpisodeEvent, "/episode/events", EVENTS)
        logger = LoggerProcess(out, root / "logger.log", trial.fsize_limit or None)
        starter = robot.create_client(StartEpisode, "/episode/start")
        assert starter.wait_for_service(timeout_sec=90.0), "the logger's /episode/start"
        wait_for(streamer.matched, 15.0, "the logger's subscriptions")
        streamer.start()
        time.sleep(0.1)
        granted: list[float] = []
        t_request = time.monotonic()
        future = starter.call_async(StartEpisode.Request(seed=1))
        future.add_done_callback(lambda _: granted.append(time.monotonic()))
        if fault == "SIGKILL":
            time.sleep(max(0.0, t_request + trial.after_s - time.monotonic()))
            t_fault = time.monotonic()
            trial.exit_code = logger.signal(signal.SIGKILL)
            _clean_shm()
        else:
            wait_for(future.done, 30.0, "the start response")
            assert future.result().success, future.result().message
            if fault in ("SIGTERM", "SIGINT"):
                time.sleep(trial.after_s)
                t_fault = time.monotonic()
                trial.exit_code = logger.signal(getattr(signal, fault))
                if trial.exit_code != 0:
                    log = logger.log.read_text(errors="replace")
                    fatal = log.find("Fatal Python error")  # faulthandler's every-thread stack dump
                    tail = log[fatal:fatal + 6000] if fatal >= 0 else log[-1500:]
                    trial.problems.append(f"exit code {trial.exit_code} after {fault}; the log ends: {tail}")
            else:
                wait_for(lambda: any(e.event == EpisodeEvent.SAVED for e in events) or logger.proc.poll() is not None,
                         60.0, "the write_error SAVED event")
                t_fault = time.monotonic()
                trial.after_s = t_fault - granted[0]
                _after_write_error(trial, graph, robot, streamer, events, logger)
        streamer.stop()
        t_open = granted[0] if granted and granted[0] < t_fault else None
        _check_bags(trial, out, streamer, t_open, t_fault)
    except Exception as err:  # noqa: BLE001  (a trial that went wrong is reported, not raised)
        trial.problems.append(f"{type(err).__name__}: {err}")
    finally:
        if streamer is not None:
            streamer.stop()
        if logger is not None:
            logger.close()
        if graph is not None:
            graph.close()
        if previous is None:
            os.environ.pop("ROS_DOMAIN_ID", None)
        else:
            os.environ["ROS_DOMAIN_ID"] = previous
    return trial


def _after_write_error(trial: Trial, graph, robot, streamer: Streamer, events, logger: LoggerProcess) -> None:
    from ros_harness import wait_for

    from stare_interfaces.msg import EpisodeEvent
    from stare_interfaces.srv import EndEpisode, StartEpisode

    saved = next((e for e in events if e.event == EpisodeEvent.SAVED), None)
    time.sleep(0.5)  # the node keeps taking (and dropping) messages after the error
    trial.alive = logger.proc.poll() is None
    log = logger.log.read_text(errors="replace")
    trial.reported = (saved is not None and saved.outcome == "write_error" and "writing the bag failed" in log
                      and "File too large" in log)
    if not trial.alive:
        tail = log.strip().splitlines()[-1:] or [""]
        trial.exit_code = logger.proc.poll()
        trial.problems.append(f"the logger died after the write error (exit {trial.exit_code}: {tail[0][:200]})")
        return
    if not trial.reported:
        trial.problems.append(f"write error not reported (SAVED outcome {saved.outcome!r})")
    streamer.images = False  # the second episode stays far below the limit
    start = graph.call(robot, StartEpisode, "/episode/start", StartEpisode.Request(seed=2))
    sent_before = len(streamer.sent[JOINTS])
    wait_for(lambda: len(streamer.sent[JOINTS]) >= sent_before + 30, 10.0, "joint states of the second episode")
    end = graph.call(robot, EndEpisode, "/episode/end", EndEpisode.Request(outcome="success"))
    trial.next_episode = bool(start.success and end.success)
    if trial.next_episode:
        seqs = read_bag(Path(end.bag_path))[JOINTS]
        trial.next_episode = len(seqs) >= 20 and seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    if not trial.next_episode:
        trial.problems.append(f"no clean second episode after the write error ({start.message}; {end.message})")
    trial.exit_code = logger.signal(signal.SIGTERM)
    if trial.exit_code != 0:
        trial.problems.append(f"exit code {trial.exit_code} after SIGTERM")


def _check_bags(trial: Trial, out: Path, streamer: Streamer, t_open: float | None, t_fault: float) -> None:
    from stare_ros.recorder import repair_bag

    bags = sorted(p for p in out.iterdir() if p.is_dir())
    trial.bags = len(bags)
    for index, bag in enumerate(bags):
        if not (bag / "metadata.yaml").exists():
            if trial.fault != "SIGKILL":
                trial.problems.append(f"{bag.name} was not closed after {trial.fault}")
            repair_bag(bag)
            trial.repaired += 1
        delivery: list[float] = []
        try:
            seqs = read_bag(bag, delivery)
        except Exception as err:  # noqa: BLE001
            trial.problems.append(f"{bag.name} does not open: {type(err).__name__}: {err}")
            continue
        trial.opened += 1
        trial.delivery_max_ms = max([trial.delivery_max_ms, *delivery])
        if index:  # RLIMIT_FSIZE's second episode: checked on its own
            continue
        for topic, got in seqs.items():
            trial.recorded += len(got)
            if got and got != list(range(got[0], got[0] + len(got))):
                trial.contiguous = False
                trial.problems.append(f"{bag.name} {topic}: not an unbroken run of what was sent")
            if t_open is None:
                continue
            sent = streamer.sent[topic]
            first = got[-1] + 1 if got else next((i for i, t in enumerate(sent) if t >= t_open), len(sent))
            missing = [t for t in sent[first:] if t < t_fault]
            window = max(IN_FLIGHT_S, trial.delivery_max_ms * 1e-3)
            received = [t for t in missing if t < t_fault - window]
            trial.lost_msgs += len(received)
            trial.lost_bytes += len(received) * streamer.size[topic]
            trial.lost_bytes_in_flight += len(missing) * streamer.size[topic]
    if trial.fault in ("SIGTERM", "SIGINT") and trial.lost_msgs:
        trial.problems.append(f"{trial.lost_msgs} messages received before {trial.fault} missing")
    if trial.fault == "SIGKILL" and trial.lost_bytes >= CHUNK_BYTES:
        trial.problems.append(f"lost {trial.lost_bytes} bytes after SIGKILL, over the 1 MiB bound")
    if trial.fault == "RLIMIT_FSIZE":
        from stare_ros.recorder import DROP_TO_FIT

        # after the error the episode is closed: what follows is dropped by design; the bound is on the bag
        trial.lost_msgs = trial.lost_bytes = trial.lost_bytes_in_flight = 0
        first = bags[0] if bags else None
        size = sum(f.stat().st_size for f in first.glob("*.mcap")) if first else 0
        trial.lost_bytes = max(0, trial.fsize_limit - size)
        if trial.lost_bytes >= CHUNK_BYTES + DROP_TO_FIT + (64 << 10):
            trial.problems.append(f"the closed bag holds {size} bytes of a {trial.fsize_limit} byte limit")
