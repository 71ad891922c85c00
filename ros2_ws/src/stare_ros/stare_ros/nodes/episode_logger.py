"""episode_logger: records the configured topics, stage states and episode events into one rosbag2
(MCAP) bag per episode, from raw CDR subscriptions (the bytes go straight into the bag). Episodes start
and end by service (/episode/start, /episode/end) or by a STOP event from elsewhere (the sim_bridge at
success or timeout); each closed bag is announced with a SAVED event and indexed in episodes.jsonl."""

from __future__ import annotations

import importlib
import time

from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
from rclpy.node import Node
from rclpy.serialization import deserialize_message, serialize_message
from std_msgs.msg import String

from stare_interfaces.msg import EpisodeEvent, StageState
from stare_interfaces.srv import EndEpisode, StartEpisode
from stare_ros.config import EpisodeLoggerConfig, Topics
from stare_ros.recorder import EpisodeInfo, EpisodeRecorder
from stare_ros.ros_common import EVENTS, LATCHED, RECORD, declare_config, run_node

STOP_GRACE_S = 0.25
"""A STOP event from another node closes the bag this much later, so that the messages of the last step,
published just before the event on other topics, still make it in."""


def message_class(msgtype: str):
    package, kind, name = msgtype.split("/")
    return getattr(importlib.import_module(f"{package}.{kind}"), name)


class EpisodeLogger(Node):
    def __init__(self, **kwargs):
        super().__init__("episode_logger", **kwargs)
        self.config = cfg = declare_config(self, EpisodeLoggerConfig)
        self.topics = Topics()
        topics = dict(entry.split(":", 1) for entry in cfg.topics)
        topics.setdefault(self.topics.stage_state, "stare_interfaces/msg/StageState")
        topics.setdefault(self.topics.episode_events, "stare_interfaces/msg/EpisodeEvent")
        self.recorder = EpisodeRecorder(cfg.output_dir, topics)
        self._group = MutuallyExclusiveCallbackGroup()  # one bag, written from one thread at a time
        for topic, msgtype in topics.items():
            qos = EVENTS if topic == self.topics.episode_events else (
                LATCHED if topic in (self.topics.instruction, self.topics.goal) else RECORD)
            self.create_subscription(message_class(msgtype), topic, self._writer(topic), qos, raw=True,
                                     callback_group=self._group)
        self.event_pub = self.create_publisher(EpisodeEvent, self.topics.episode_events, EVENTS)
        self.create_service(StartEpisode, "/episode/start", self._on_start, callback_group=self._group)
        self.create_service(EndEpisode, "/episode/end", self._on_end, callback_group=self._group)
        self.create_timer(0.05, self._on_timer, callback_group=self._group)
        self.count = 0
        self.current: EpisodeEvent | None = None
        self._pending_stop: tuple[float, EpisodeEvent] | None = None
        self.dropped = 0
        """Messages that arrived while no episode was being recorded."""

    def _writer(self, topic: str):
        def write(data: bytes) -> None:
            event = deserialize_message(data, EpisodeEvent) if topic == self.topics.episode_events else None
            if event is not None and not self._belongs_in_bag(event):
                return
            stamp = self.get_clock().now().nanoseconds
            if not self._record(topic, stamp, data):
                self.dropped += 1
                return
            if topic == self.topics.stage_state:
                msg = deserialize_message(data, StageState)
                start = msg.stage_start.sec * 1_000_000_000 + msg.stage_start.nanosec
                self.recorder.note_stage(msg.stage_index, msg.stage_name, start or stamp)
            elif topic == self.topics.instruction and self.recorder.info is not None:
                self.recorder.info.instruction = deserialize_message(data, String).data
            elif event is not None and event.event == EpisodeEvent.STOP:
                if event.seed >= 0:  # the simulator's seed when the request left it to the simulator
                    self.recorder.info.seed = event.seed
                self._pending_stop = (time.monotonic(), event)

        return write

    def _belongs_in_bag(self, event: EpisodeEvent) -> bool:
        """Another node's event about the episode being recorded. This node's own START and SAVED are written
        when they happen (or not at all), not when DDS hands them back, which may be after a SIGTERM."""
        current = self.current
        return (event.event not in (EpisodeEvent.START, EpisodeEvent.SAVED) and current is not None
                and event.episode_id == current.episode_id)

    def _record(self, topic: str, stamp_ns: int, data: bytes) -> bool:
        """Write into the bag; a failed write (disk full, file-size limit) closes the episode as
        'write_error' at the bag's last complete chunk, with an ERROR log, and the node records on from the
        next start."""
        try:
            return self.recorder.write(topic, stamp_ns, data)
        except OSError as err:
            episode = self.current.episode_id if self.current is not None else "?"
            self.get_logger().error(f"episode {episode}: writing the bag failed ({err}); closing it at its last "
                                    "complete chunk (< 1 MiB lost) as 'write_error'")
            self._close("write_error", 0, error=f"{type(err).__name__}: {err}")
            return False

    def _on_timer(self) -> None:
        if self._pending_stop is not None and time.monotonic() - self._pending_stop[0] >= STOP_GRACE_S:
            _, event = self._pending_stop
            self._close(event.outcome, event.steps)

    def _on_start(self, request: StartEpisode.Request, response: StartEpisode.Response):
        if self.current is not None:
            self._close("aborted", 0)
        self.count += 1
        episode_id = f"{time.strftime('%Y%m%dT%H%M%S')}-{self.count:04d}"
        task = request.task or self.config.task
        event = EpisodeEvent(event=EpisodeEvent.START, episode_id=episode_id, task=task,
                             instruction=request.instruction, seed=request.seed)
        event.header.stamp = self.get_clock().now().to_msg()
        try:
            path = self.recorder.start(EpisodeInfo(episode_id, task, request.instruction, self.config.checkpoint,
                                                   request.seed, self.get_clock().now().nanoseconds))
        except Exception as err:  # unwritable directory, existing bag: refuse, keep running
            response.success, response.message = False, f"cannot open a bag: {type(err).__name__}: {err}"
            self.get_logger().error(response.message)
            return response
        self.current = event
        if not self._record(self.topics.episode_events, self.get_clock().now().nanoseconds, serialize_message(event)):
            response.success, response.message = False, f"cannot write the bag {path}"
            return response
        self.event_pub.publish(event)
        response.success, response.message, response.episode_id = True, f"recording to {path}", episode_id
        return response

    def _on_end(self, request: EndEpisode.Request, response: EndEpisode.Response):
        current = self.current
        if current is None:
            response.success, response.message = False, "no episode is running"
            return response
        stop = EpisodeEvent(event=EpisodeEvent.STOP, episode_id=current.episode_id, task=current.task,
                            instruction=current.instruction, seed=current.seed, outcome=request.outcome or "aborted")
        stop.header.stamp = self.get_clock().now().to_msg()
        self.event_pub.publish(stop)
        if not self._record(self.topics.episode_events, self.get_clock().now().nanoseconds, serialize_message(stop)):
            response.success, response.message = False, "writing the bag failed: closed as 'write_error'"
            return response
        path = self._close(stop.outcome, 0)
        response.success, response.message, response.bag_path = path is not None, f"saved {path}", str(path or "")
        return response

    def _close(self, outcome: str, steps: int, error: str = ""):
        current, self.current, self._pending_stop = self.current, None, None
        try:
            path = self.recorder.stop(outcome, steps, error)
        except OSError as err:  # even the rewrite failed: the unclosed file stays for `repair_bag`
            self.get_logger().error(f"episode {current.episode_id if current else '?'}: closing the bag failed "
                                    f"({err}); run stare_ros.recorder.repair_bag on it when there is space")
            return None
        if current is not None and path is not None:
            saved = EpisodeEvent(event=EpisodeEvent.SAVED, episode_id=current.episode_id, task=current.task,
                                 instruction=current.instruction, seed=current.seed, outcome=outcome, steps=steps,
                                 bag_path=str(path))
            saved.header.stamp = self.get_clock().now().to_msg()
            self.event_pub.publish(saved)
            self.get_logger().info(f"episode {current.episode_id}: {outcome}, bag {path}")
        return path

    def close(self) -> None:
        """On shutdown: close the open bag as 'aborted' (the context may be gone: nothing is published)."""
        if self.recorder.recording:
            try:
                path = self.recorder.stop("aborted")
            except OSError as err:
                self.get_logger().error(f"shutting down: closing the episode bag failed ({err})")
                return
            self.get_logger().info(f"shutting down: episode bag {path} closed as aborted")


def main(args=None) -> int:
    return run_node(EpisodeLogger, args)


if __name__ == "__main__":
    raise SystemExit(main())
