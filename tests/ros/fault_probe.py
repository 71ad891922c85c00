"""Faults injected into a running policy_server and stage_segmenter over DDS (issue 8, items 2 and 3),
shared by `tests/ros/stare_ros/test_policy_server_faults.py` and `benchmarks/ros_faults.py`. The nodes
may run in this process or in their own: everything here talks to them through topics and services only.

- `Robot`: a robot stand-in publishing one real observation (camera image, joint states) from a thread of
  its own at set rates (up to kHz), stamped at publish, instruction and goal latched; a stream can be
  stopped and resumed at any moment.
- `Actions`: every PolicyAction the server publishes, with its arrival time.
- one function per fault (`stale_trial`, `estop_trial`, `swap_trial`) that injects it once and returns
  what happened; `load_window` and `segmenter_samples` measure a stretch of steady load.

Times are system-clock seconds: the stamps the server writes (its ROS clock) and `time.time()` here."""

from __future__ import annotations

import re
import threading
import time
from dataclasses import dataclass, field

import numpy as np

INSTRUCTION = "pick up the red cube and move it to the green goal"
STALE_REASONS = ("stale image", "stale joint state", "stale inputs")
POLL_S = 0.005


def seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


def wait_until(condition, timeout_s: float, what: str):
    """Poll `condition()` until it returns something truthy (returned); AssertionError after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(POLL_S)


class Robot:
    """Camera images and joint states at `rates` (Hz, per stream), published from a thread of their own and
    stamped at publish. A stream that falls behind (a busy CPU) catches up by at most 0.1 s: it never sends
    a burst of stale-timed messages. `stop(kind)` returns the stamp of the stream's last message, after
    which none is sent until `resume(kind)`."""

    KINDS = ("image", "joints")

    def __init__(self, node, image: np.ndarray, qpos, goal, rates: dict[str, float]):
        from geometry_msgs.msg import PointStamped
        from sensor_msgs.msg import Image, JointState
        from std_msgs.msg import String

        from stare_ros.config import PANDA_ARM_JOINTS, PANDA_FINGER_JOINTS
        from stare_ros.ros_common import LATCHED, RELIABLE

        self.node, self.rates = node, dict(rates)
        h, w = image.shape[:2]
        self.msgs = {"image": Image(height=h, width=w, encoding="rgb8", step=w * 3, data=image.tobytes()),
                     "joints": JointState(name=[*PANDA_ARM_JOINTS, *PANDA_FINGER_JOINTS],
                                          position=[float(v) for v in qpos])}
        self.marker_msg = JointState(name=list(PANDA_ARM_JOINTS), position=[float(v) for v in qpos[:7]])
        self.pubs = {"image": node.create_publisher(Image, "/camera/image_raw", RELIABLE),
                     "joints": node.create_publisher(JointState, "/joint_states", RELIABLE)}
        node.create_publisher(String, "/instruction", LATCHED).publish(String(data=INSTRUCTION))
        point = PointStamped()
        point.point.x, point.point.y, point.point.z = map(float, goal)
        node.create_publisher(PointStamped, "/goal_point", LATCHED).publish(point)
        self.on = {k: True for k in self.KINDS}
        self.last = {k: 0.0 for k in self.KINDS}
        """Stamp of the last message sent, per stream."""
        self.sent = {k: 0 for k in self.KINDS}
        self._lock = threading.Lock()
        self._quit = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="robot")
        self._thread.start()

    def _publish(self, kind: str, msg=None) -> float:
        from stare_ros.ros_common import to_stamp

        msg = msg or self.msgs[kind]
        now = time.time()
        msg.header.stamp = to_stamp(now)
        self.pubs[kind].publish(msg)
        self.last[kind] = now
        self.sent[kind] += 1
        return now

    def _run(self) -> None:
        due = {k: time.monotonic() for k in self.KINDS}
        while not self._quit.is_set():
            kind = min(due, key=due.get)
            now = time.monotonic()
            if due[kind] > now:
                time.sleep(min(due[kind] - now, 0.01))
                continue
            due[kind] = max(due[kind] + 1.0 / self.rates[kind], now - 0.1)
            with self._lock:
                if self.on[kind]:
                    self._publish(kind)

    def stop(self, kind: str) -> float:
        with self._lock:  # no message of this stream is in flight once this returns
            self.on[kind] = False
            return self.last[kind]

    def resume(self, kind: str) -> None:
        with self._lock:
            self.on[kind] = True

    def marker(self) -> tuple[float, int]:
        """One joint state without finger joints (a bad sample the stage_segmenter answers at once, with
        its sample count in /diagnostics): its stamp and the joint states sent so far, itself included.
        The policy_server holds one tick for it."""
        with self._lock:
            return self._publish("joints", self.marker_msg), self.sent["joints"]

    def subscribers(self) -> int:
        return min(p.get_subscription_count() for p in self.pubs.values())

    def close(self) -> None:
        self._quit.set()
        self._thread.join(timeout=5.0)


class Actions:
    """Every PolicyAction with its arrival time."""

    def __init__(self, node):
        from stare_interfaces.msg import PolicyAction
        from stare_ros.ros_common import RELIABLE

        self.got: list[tuple[float, object]] = []
        node.create_subscription(PolicyAction, "/policy_server/action",
                                 lambda m: self.got.append((time.time(), m)), RELIABLE)

    def since(self, t: float) -> list:
        """Actions stamped (published) after `t`."""
        return [m for _, m in list(self.got) if seconds(m.header.stamp) > t]

    def between(self, t0: float, t1: float) -> list:
        return [m for _, m in list(self.got) if t0 < seconds(m.header.stamp) <= t1]

    def moving_since(self, t: float) -> list:
        return [m for m in self.since(t) if not m.held]

    def wait_moving(self, t: float, timeout_s: float, n: int = 1) -> list:
        return wait_until(lambda: len(self.moving_since(t)) >= n and self.moving_since(t), timeout_s,
                          f"{n} motion command(s) after t={t:.3f}")

    def wait_count(self, t: float, n: int, timeout_s: float) -> list:
        return wait_until(lambda: len(self.since(t)) >= n and self.since(t), timeout_s, f"{n} actions after t={t:.3f}")

    def out_of_limits(self, config) -> int:
        """Commands outside the safety layer's limits (`SafetyConfig`): a dimension beyond action_limit, a
        step longer than max_step_translation_m / max_step_rotation_rad (must be 0)."""
        bad = 0
        for _, m in list(self.got):
            c = np.asarray(m.command, np.float64)
            bad += bool(len(c) != 7 or not np.all(np.isfinite(c)) or np.abs(c).max() > config.action_limit + 1e-6
                        or np.linalg.norm(c[:3]) * config.pos_scale_m > config.max_step_translation_m + 1e-6
                        or np.linalg.norm(c[3:6]) * config.rot_scale_rad > config.max_step_rotation_rad + 1e-6)
        return bad

    def image_age_violations(self, stale_s: float) -> int:
        """Motion commands published with an image older than `stale_s` (must be 0)."""
        return sum(1 for _, m in list(self.got)
                   if not m.held and seconds(m.header.stamp) - seconds(m.observation_stamp) > stale_s)


def start_node(name: str, params: dict):
    """A STARE node in its own process, as `ros2 launch` starts it (single-threaded executor), with
    parameter overrides; the environment (ROS domain, discovery range) is this process's."""
    import subprocess
    import sys

    args = [a for k, v in params.items() for a in ("-p", f"{k}:={str(v).lower() if isinstance(v, bool) else v}")]
    return subprocess.Popen([sys.executable, "-m", f"stare_ros.nodes.{name}", "--ros-args", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop_nodes(procs) -> None:
    import subprocess

    for proc in procs:
        proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def call(node, srv_type, name: str, request, timeout_s: float = 10.0):
    client = node.create_client(srv_type, name)
    assert client.wait_for_service(timeout_sec=15.0), f"service {name} not available"
    future = client.call_async(request)
    wait_until(future.done, timeout_s, f"a response from {name}")
    return future.result()


def gaps(actions: list) -> np.ndarray:
    """Intervals (s) between consecutive publishes, in stamp order."""
    stamps = np.sort([seconds(m.header.stamp) for m in actions])
    return np.diff(stamps)


# -- staleness -----------------------------------------------------------------------------------------
@dataclass
class StaleTrial:
    kind: str
    reaction_s: float
    """First zero-motion command after the stream stopped, minus the moment its last message became older
    than stale_after_s (negative: held before, e.g. inputs that aged during inference)."""
    reason: str
    moving_after_threshold: int
    """Motion commands published when the stopped input was older than the threshold (must be 0)."""
    recovered_s: float
    """Stream resumed -> first motion command."""
    inference_s: float = 0.0
    """When the first hold is the tick in flight finding its inputs aged during inference: that
    inference's duration (from its reason); else 0. A long one points at the process, not the check."""


def stale_trial(robot: Robot, actions: Actions, kind: str, stale_s: float, period_s: float,
                rng: np.random.Generator, timeout_s: float = 10.0, hold_ticks: int = 3) -> StaleTrial:
    """Stop `kind` at a random moment while the arm moves, wait for the hold, check nothing moved past
    the threshold while it was stopped, resume and wait for motion again."""
    actions.wait_moving(time.time(), timeout_s)
    time.sleep(rng.uniform(0.0, period_s))
    last = robot.stop(kind)
    threshold = last + stale_s
    try:
        held = wait_until(lambda: [m for m in actions.since(last) if m.held], stale_s + timeout_s,
                          f"a hold after the {kind} stream stopped")
        first = held[0]
        actions.wait_count(seconds(first.header.stamp), hold_ticks, timeout_s)
    finally:
        resumed = time.time()
        robot.resume(kind)
    moving = [m for m in actions.between(threshold, resumed) if not m.held]
    back = actions.wait_moving(resumed, timeout_s)[0]
    inference = re.search(r"after ([0-9.]+) s of inference", first.reason)
    return StaleTrial(kind, seconds(first.header.stamp) - threshold, first.reason, len(moving),
                      seconds(back.header.stamp) - resumed, float(inference.group(1)) if inference else 0.0)


# -- e-stop --------------------------------------------------------------------------------------------
@dataclass
class EstopTrial:
    reaction_s: float
    """Service called -> first e-stop hold published."""
    moving_after_call: int
    """Motion commands published between the call and the first e-stop hold (0 or the tick in flight)."""
    moving_after_response: int
    """Motion commands published after the service answered, before release (must be 0)."""
    latched_ticks: int
    """Consecutive e-stop holds observed while engaged."""
    resumed_s: float
    """Released -> first motion command."""


def estop_trial(node, actions: Actions, period_s: float, rng: np.random.Generator, latched_ticks: int = 10,
                timeout_s: float = 10.0) -> EstopTrial:
    from std_srvs.srv import SetBool

    actions.wait_moving(time.time(), timeout_s)
    time.sleep(rng.uniform(0.0, period_s))
    called = time.time()
    try:
        assert call(node, SetBool, "/policy_server/estop", SetBool.Request(data=True)).success
        answered = time.time()
        engaged = actions.wait_count(answered, latched_ticks, timeout_s + latched_ticks * period_s)
    finally:
        released = time.time()
        assert call(node, SetBool, "/policy_server/estop", SetBool.Request(data=False)).success
    after_call = actions.since(called)
    first = next(m for m in after_call if m.held and "e-stop" in m.reason)
    before_hold = [m for m in after_call if seconds(m.header.stamp) < seconds(first.header.stamp) and not m.held]
    during = actions.between(answered, released)
    latched = 0
    for m in during:
        if not (m.held and "e-stop" in m.reason):
            break
        latched += 1
    back = actions.wait_moving(released, timeout_s)[0]
    assert len(engaged) >= latched_ticks
    return EstopTrial(seconds(first.header.stamp) - called, len(before_hold), sum(not m.held for m in during),
                      latched, seconds(back.header.stamp) - released)


# -- checkpoint swap -----------------------------------------------------------------------------------
@dataclass
class SwapTrial:
    ok: bool
    message: str
    load_s: float
    """Service called -> answered (the new policy is in)."""
    max_gap_swap_s: float
    """Longest interval between consecutive PolicyActions that overlaps the swap."""
    max_gap_before_s: float
    """Longest interval in the `before_ticks` control periods before the swap."""
    missed_ticks: int = 0
    """Control periods without a command, from the last motion command before the call to the third
    after the answer: the periods that span minus the commands in it. (An interval alone is no measure:
    a hold is published at the start of its period, a motion command after inference, so a hold followed
    by a motion command is up to period + inference apart with no period missed.)"""
    commands_during_load: int = 0
    """PolicyActions published between the call and the answer (holds, while the new policy loads): a
    server that stops ticking for the load publishes none."""
    raw_before: list = field(default_factory=list)
    """Raw actions of the motion commands in that stretch."""
    raw_after: list = field(default_factory=list)
    """Raw actions of the motion commands published after the answer."""


def swap_trial(node, actions: Actions, path: str, period_s: float, after_ticks: int = 5, before_ticks: int = 40,
               timeout_s: float = 120.0, moving: bool = True) -> SwapTrial:
    """LoadCheckpoint(`path`) while ticks flow (motion commands, or any with `moving` false: a server
    without a checkpoint publishes holds), then `after_ticks` motion commands of the new policy."""
    from stare_interfaces.srv import LoadCheckpoint

    if moving:
        actions.wait_moving(time.time(), 30.0, n=2)
    else:
        actions.wait_count(time.time(), 2, 30.0)
    called = time.time()
    response = call(node, LoadCheckpoint, "/policy_server/load_checkpoint", LoadCheckpoint.Request(path=str(path)),
                    timeout_s=timeout_s)
    answered = time.time()
    moving_after = actions.wait_moving(answered, 30.0, n=max(after_ticks, 3))
    before = actions.between(called - (before_ticks + 1) * period_s, called - period_s)
    span = max(answered - called, 3 * period_s)
    # the intervals that overlap the swap: from the last publish before the call to the first after the answer
    stamps = np.sort([seconds(m.header.stamp) for m in actions.between(called - span, answered + span)])
    earlier, later = stamps[stamps <= called], stamps[stamps >= answered]
    lo = earlier[-1] if len(earlier) else called
    hi = later[0] if len(later) else answered
    inside = np.concatenate([[lo], stamps[(stamps > lo) & (stamps < hi)], [hi]])
    moved_before = [seconds(m.header.stamp) for m in actions.between(called - span, called) if not m.held]
    start = moved_before[-1] if moved_before else lo
    end = sorted(seconds(m.header.stamp) for m in moving_after)[2]
    commands = len(actions.between(start, end))  # the one at `start` excluded, the one at `end` included
    missed = max(0, round((end - start) / period_s) - commands)
    return SwapTrial(response.success, response.message, answered - called,
                     float(np.diff(inside).max(initial=0.0)), float(gaps(before).max(initial=0.0)), missed,
                     len(actions.between(called, answered)),
                     [list(m.raw) for m in before if not m.held],
                     [list(m.raw) for m in actions.since(answered) if not m.held])


# -- load ----------------------------------------------------------------------------------------------
@dataclass
class Window:
    seconds: float
    ticks: int
    tick_hz: float
    gap_p99_ms: float
    gap_max_ms: float
    age_p50_ms: float
    """Image stamp -> command publish, motion commands."""
    age_p99_ms: float
    moving: int
    image_age_violations: int
    sent: dict


def load_window(robot: Robot, actions: Actions, duration_s: float, stale_s: float) -> Window:
    """Let the streams run for `duration_s` and measure what the server published in that time."""
    sent0 = dict(robot.sent)
    start = time.time()
    time.sleep(duration_s)
    end = time.time()
    window = actions.between(start, end)
    moving = [m for m in window if not m.held]
    age = np.array([seconds(m.header.stamp) - seconds(m.observation_stamp) for m in moving]) * 1e3
    g = gaps(window) * 1e3
    pct = (lambda a, q: float(np.percentile(a, q)) if len(a) else float("nan"))
    return Window(end - start, len(window), len(window) / (end - start), pct(g, 99), float(g.max(initial=0.0)),
                  pct(age, 50), pct(age, 99), len(moving),
                  sum(1 for a in age if a > stale_s * 1e3),
                  {k: robot.sent[k] - sent0[k] for k in robot.sent})


class SegmenterProbe:
    """The stage_segmenter's answers to marker samples: its StageState (event bad_input, stamped with the
    marker's stamp) and its diagnostic carrying the number of samples it has processed."""

    def __init__(self, node):
        from diagnostic_msgs.msg import DiagnosticArray

        from stare_interfaces.msg import StageState
        from stare_ros.ros_common import RELIABLE

        self.answers: dict[int, float] = {}
        """Marker stamp (us) -> arrival time of the segmenter's answer."""
        self.counts: list[tuple[float, int]] = []
        """(diagnostic stamp, samples processed)."""
        node.create_subscription(StageState, "/stage_state", self._on_stage, RELIABLE)
        node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, RELIABLE)

    def _on_stage(self, msg) -> None:
        if msg.event == "bad_input":
            self.answers[round(seconds(msg.header.stamp) * 1e6)] = time.time()

    def _on_diag(self, msg) -> None:
        for s in msg.status:
            if s.name == "stare: stage_segmenter":
                values = {kv.key: kv.value for kv in s.values}
                self.counts.append((seconds(msg.header.stamp), int(values["samples"])))

    def mark(self, robot: Robot, timeout_s: float = 10.0, answer_s: float = 1.0) -> tuple[float, int, int]:
        """Send a marker (again after `answer_s` without an answer: a segmenter that falls behind drops
        samples, markers included): (lag in s from its stamp to the segmenter's answer, samples the
        segmenter has processed with it, joint states sent with it)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            n = len(self.counts)
            stamp, sent = robot.marker()
            us = round(stamp * 1e6)
            try:
                arrived = wait_until(lambda: next((self.answers[k] for k in (us - 1, us, us + 1) if k in self.answers),
                                                  None), answer_s, "the segmenter's answer to a marker")
            except AssertionError:
                continue
            wait_until(lambda: len(self.counts) > n, timeout_s, "the segmenter's diagnostic")
            return arrived - stamp, self.counts[-1][1], sent
        raise AssertionError(f"the segmenter answered no marker in {timeout_s} s")
