"""Real rclpy for tests: a context with an executor spinning in a thread, test publishers and
recorders, and waits bounded in time and in iterations."""

from __future__ import annotations

import threading
import time

import numpy as np
import rclpy
from rclpy.executors import MultiThreadedExecutor

MATCH_TIMEOUT_S = 15.0  # discovery is usually < 0.5 s, sometimes ~3 s
POLL_S = 0.01


def wait_for(condition, timeout_s: float, what: str = "condition") -> None:
    """Poll `condition()` until true; fail after `timeout_s` or the matching number of polls."""
    deadline = time.monotonic() + timeout_s
    for _ in range(int(timeout_s / POLL_S) + 1):
        if condition():
            return
        if time.monotonic() > deadline:
            break
        time.sleep(POLL_S)
    if not condition():
        raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


class Graph:
    def __init__(self):
        self.context = rclpy.context.Context()
        rclpy.init(context=self.context)
        self.executor = MultiThreadedExecutor(num_threads=4, context=self.context)
        self.nodes = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set() and self.context.ok():
            self.executor.spin_once(timeout_sec=0.05)

    def add(self, node):
        self.executor.add_node(node)
        self.nodes.append(node)
        return node

    def node(self, name: str):
        return self.add(rclpy.create_node(name, context=self.context))

    def start(self, cls, **parameters):
        """A STARE node of class `cls` with parameter overrides."""
        from rclpy.parameter import Parameter

        overrides = [Parameter(k, value=list(v) if isinstance(v, tuple) else v) for k, v in parameters.items()]
        return self.add(cls(context=self.context, parameter_overrides=overrides))

    def recorder(self, node, msg_type, topic: str, qos=None):
        from stare_ros.ros_common import RELIABLE

        got: list = []
        node.create_subscription(msg_type, topic, got.append, qos or RELIABLE)
        return got

    def call(self, node, srv_type, name: str, request, timeout_s: float = 10.0, wait_s: float = MATCH_TIMEOUT_S):
        """Call a service; `wait_s` bounds the wait for the server (longer for a node still starting in
        another process), `timeout_s` the wait for the response."""
        client = node.create_client(srv_type, name)
        assert client.wait_for_service(timeout_sec=wait_s), f"service {name} not available after {wait_s} s"
        future = client.call_async(request)
        wait_for(future.done, timeout_s, f"a response from {name}")
        return future.result()

    def close(self) -> None:
        from stare_ros.ros_common import stop_executor

        self._stop.set()
        self._thread.join(timeout=5.0)
        stop_executor(self.executor)  # before destroying: no callback may find its node gone
        for node in reversed(self.nodes):
            close = getattr(node, "close", None)
            if close is not None:
                close()
            node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def image_msg(image: np.ndarray, stamp, encoding: str = "rgb8"):
    from sensor_msgs.msg import Image

    msg = Image(height=image.shape[0], width=image.shape[1], encoding=encoding, step=image.shape[1] * 3)
    msg.header.stamp = stamp
    msg.data = image.tobytes()
    return msg


def joint_msg(q, stamp, names=None):
    from sensor_msgs.msg import JointState

    from stare_ros.config import PANDA_ARM_JOINTS, PANDA_FINGER_JOINTS

    msg = JointState(name=list(names or (*PANDA_ARM_JOINTS, *PANDA_FINGER_JOINTS)), position=[float(v) for v in q])
    msg.header.stamp = stamp
    return msg


def bag_custom_data(bag) -> dict[str, str]:
    """The custom_data of a rosbag2 bag, read from its metadata.yaml as `ros2 bag info` does."""
    from pathlib import Path

    import yaml

    meta = yaml.safe_load((Path(bag) / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    return meta.get("custom_data") or {}
