"""What every STARE node shares: typed parameters from a config dataclass, stamps, QoS profiles, the
diagnostics message, and a `main()` that spins until SIGINT/SIGTERM and shuts down cleanly."""

from __future__ import annotations

import dataclasses
import faulthandler
import signal
import sys
import typing

from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

from stare_policy.typed_config import ConfigError, from_dict

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
"""Images, joint states, commands: reliable, so lock-step simulation and the logger lose nothing."""
LATEST = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
"""The policy_server's camera and joints: it acts on the newest observation, so a queue of older ones
would only add latency when it falls behind (lock-step simulation waits for each command anyway)."""
JOINT_STREAM = QoSProfile(depth=250, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
"""Joint states for a node that needs every sample (the stage segmenter): a quarter second of a robot's
1 kHz stream, so that a moment without the CPU delays samples instead of dropping them (depth 10 kept
90-97 % of 1 kHz beside a running policy_server on 2 cores; 250 kept all)."""
LATCHED = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE, durability=DurabilityPolicy.TRANSIENT_LOCAL)
"""Instruction and goal: a late subscriber still gets the current one."""
RECORD = QoSProfile(depth=1000, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)
"""The logger's subscriptions: a deep reader queue, so that a logger that falls behind for a while
(a busy CPU, a burst of large images) catches up instead of losing the oldest samples."""
EVENTS = QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE, history=HistoryPolicy.KEEP_LAST)


def declare_config(node, cls):
    """Declare every field of the dataclass `cls` as a parameter of `node` (default: the field's
    default) and build `cls` from the values; a bad value raises ValueError with one line."""
    from rclpy.exceptions import ParameterException

    hints = typing.get_type_hints(cls)
    values = {}
    for f in dataclasses.fields(cls):
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        try:
            value = node.declare_parameter(f.name, list(default) if isinstance(default, tuple) else default).value
        except ParameterException as err:  # an override of another type than the field's
            raise ValueError(f"{node.get_name()}: bad parameter: {err}") from None
        if hints[f.name] is float and isinstance(value, int):
            value = float(value)
        if isinstance(default, tuple) and value is not None:
            value = tuple(value)
        values[f.name] = value
    try:
        return from_dict(cls, values)
    except (ConfigError, TypeError) as err:
        raise ValueError(f"{node.get_name()}: bad parameter: {err}") from None


def to_seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def to_stamp(seconds: float):
    from builtin_interfaces.msg import Time

    sec = int(seconds // 1)
    return Time(sec=sec, nanosec=min(int(round((seconds - sec) * 1e9)), 999_999_999))


def now_seconds(node) -> float:
    return node.get_clock().now().nanoseconds * 1e-9


def diagnostics(node, name: str, level: int, message: str, values: dict[str, str]):
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue

    msg = DiagnosticArray()
    msg.header.stamp = node.get_clock().now().to_msg()
    msg.status = [DiagnosticStatus(level=bytes([level]), name=name, message=message, hardware_id=node.get_name(),
                                   values=[KeyValue(key=k, value=str(v)) for k, v in values.items()])]
    return msg


def stop_executor(executor, timeout_s: float = 5.0) -> None:
    """Stop an executor and wait for the callbacks in flight, so that nodes can be destroyed after it.
    Jazzy's `Executor.shutdown` does not wait for them (its wait is skipped once the shutdown flag is
    set), and a multi-threaded executor's pool keeps running them against nodes being destroyed."""
    executor.shutdown(timeout_sec=timeout_s)
    pool = getattr(executor, "_executor", None)
    if pool is not None:
        pool.shutdown(wait=True)


def run_node(make_node, args=None) -> int:
    """Create the node (`make_node()`), spin it, shut down on SIGINT/SIGTERM. Exit code 1 with one line
    when the node cannot start (bad parameters, checkpoint missing).

    A single-threaded executor: no node waits inside a callback, and rclpy's multi-threaded executor
    costs more than it gives on a small machine (benchmarks/ros_nodes.py, policy_server on 2 cores: it
    answered 8 of 20 images a second with the policy busy 20 ms per image; single-threaded, all 30 of 30)."""
    import rclpy
    from rclpy.executors import ExternalShutdownException, SingleThreadedExecutor

    faulthandler.enable()  # a crash in native code (rmw, a message library) leaves every thread's Python stack
    started = False

    def on_sigint(signum, frame) -> None:
        """rclpy's own SIGINT handler (installed by `rclpy.init`, over this one) shuts the context down, which
        ends the spin as a SIGTERM does, and then calls this one. Python's default would raise
        KeyboardInterrupt wherever the main thread is, inside a bag write or rclpy's executor: such a SIGINT
        segfaulted the episode_logger in about 1 of 50 trials (its heap was corrupt by the time the bag's
        metadata was written), while SIGTERM never failed. Before rclpy is up, nothing else would stop us."""
        if not started:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, on_sigint)
    rclpy.init(args=args if args is not None else sys.argv)
    started = True
    node = executor = None
    try:
        node = make_node()
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except RuntimeError:  # rclpy's RCLError: a signal shut the context down under the executor or the node
        if rclpy.ok():
            raise
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    finally:
        if executor is not None:
            stop_executor(executor)
        if node is not None:
            close = getattr(node, "close", None)
            if close is not None:
                close()
            node.destroy_node()
        rclpy.try_shutdown()
    return 0
