"""stage_segmenter: the proprioceptive StARe separator (`stare_policy.stages.ProprioSegmenter`) online
from joint states (7 arm + 2 finger joints) and the commanded gripper. Publishes StageState on every
change of stage or event and at a low fixed rate; restarts on each episode START event."""

from __future__ import annotations

import math
import threading

from diagnostic_msgs.msg import DiagnosticArray
from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64

from stare_interfaces.msg import EpisodeEvent, StageState
from stare_policy.stages import ProprioSegmenter, stage_spec
from stare_ros.config import StageSegmenterConfig, Topics
from stare_ros.ros_common import EVENTS, JOINT_STREAM, RELIABLE, declare_config, diagnostics, run_node, to_seconds, to_stamp


class StageSegmenter(Node):
    def __init__(self, **kwargs):
        super().__init__("stage_segmenter", **kwargs)
        self.config = cfg = declare_config(self, StageSegmenterConfig)
        topics = Topics()
        self._lock = threading.Lock()
        try:
            self.segmenter = ProprioSegmenter(stage_spec(cfg.task))
        except KeyError as err:  # an unknown task: one-line error at start-up
            raise ValueError(f"stage_segmenter: bad parameter: task: no stage spec for {cfg.task!r}") from None
        self.task = cfg.task
        self.gripper = 1.0
        self.stage_start = 0.0
        self._last: tuple[int, str] | None = None
        self.stage_pub = self.create_publisher(StageState, topics.stage_state, RELIABLE)
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", RELIABLE)
        self.create_subscription(JointState, topics.joint_states, self._on_joints, JOINT_STREAM)
        self.create_subscription(Float64, topics.gripper, self._on_gripper, RELIABLE)
        self.create_subscription(EpisodeEvent, topics.episode_events, self._on_event, EVENTS)
        self.create_timer(1.0 / cfg.publish_rate_hz, self._on_timer)

    def _on_event(self, event: EpisodeEvent) -> None:
        if event.event != EpisodeEvent.START:
            return
        with self._lock:
            if event.task and event.task != self.task:
                try:
                    self.segmenter = ProprioSegmenter(stage_spec(event.task))
                    self.task = event.task
                except (KeyError, ValueError) as err:
                    self.get_logger().error(f"episode {event.episode_id}: {err}; keeping {self.task}")
            self.segmenter.reset()
            self.gripper, self._last = 1.0, None

    def _on_gripper(self, msg: Float64) -> None:
        self.gripper = msg.data

    def _on_joints(self, msg: JointState) -> None:
        cfg = self.config
        index = {name: i for i, name in enumerate(msg.name)}
        # Missing joints make a short sample, which the separator labels unknown with the reason.
        q = [msg.position[index[n]] for n in (*cfg.arm_joints, *cfg.finger_joints)
             if n in index and index[n] < len(msg.position)]
        t = to_seconds(msg.header.stamp)
        with self._lock:
            seg = self.segmenter
            events_before = len(seg.events)
            label = seg.step(q, self.gripper, t if t > 0 else None)
            event = seg.events[-1][1] if len(seg.events) > events_before else ""
            if label >= 0 and (self._last is None or label != self._last[0]):
                self.stage_start = t
            changed = self._last is None or (label, event) != self._last or event != ""
            self._last = (label, event)
        if changed:
            self._publish(msg.header.stamp, event)
        if event == "bad_input":
            self.get_logger().warn(f"bad joint state: {seg.last_error}", throttle_duration_sec=1.0)
            self.diag_pub.publish(diagnostics(self, "stare: stage_segmenter", 1, f"bad joint state: {seg.last_error}",
                                              {"task": self.task, "samples": str(seg.samples)}))

    def _on_timer(self) -> None:
        if self._last is not None:
            self._publish(self.get_clock().now().to_msg(), "")

    def _publish(self, stamp, event: str) -> None:
        seg = self.segmenter
        names = seg.spec.names
        # A bad sample keeps the last good stage (the separator continues from it), flagged by
        # confidence 0 and the event.
        stage = seg.stage
        msg = StageState(task=self.task, stage_index=max(stage, 0), stage_name=names[max(stage, 0)],
                         num_stages=len(names), confidence=0.0 if seg.label < 0 else 1.0, regressed=False,
                         event=event)
        msg.header.stamp = stamp
        msg.stage_start = to_stamp(self.stage_start) if math.isfinite(self.stage_start) else stamp
        self.stage_pub.publish(msg)


def main(args=None) -> int:
    return run_node(StageSegmenter, args)


if __name__ == "__main__":
    raise SystemExit(main())
