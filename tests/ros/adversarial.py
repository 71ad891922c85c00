"""Adversarial inputs for the policy_server (issue 8, item 1), shared by its fuzz tests and the soak in
`benchmarks/fault_injection.py`: hypothesis strategies for every subscribed message (camera image, joint
state, instruction, goal point), the limits a command must keep, and a ROS-free harness that takes a
message the way the node's callbacks do (conversions, then `PolicyRunner.set_*` or `reject`).

A fuzz case: good inputs -> a normal command; the adversarial message (and an adversarial policy output)
-> a command within the limits, held and reported when the message is refused; good inputs again -> a
normal command at the next tick."""

from __future__ import annotations

import math
import sys
import time
from dataclasses import dataclass, field
from types import SimpleNamespace

import numpy as np
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from stare_ros.config import PANDA_ARM_JOINTS, PANDA_FINGER_JOINTS, PolicyServerConfig
from stare_ros.conversions import (InputError, TcpPose, goal_point, image_array, input_stamp, instruction_text,
                                   joint_positions)
from stare_ros.policy_runner import WARN, PolicyRunner

KINDS = ("image", "joints", "instruction", "goal")
HW = (128, 128)
REST_Q = (0.0, 0.4, 0.0, -2.0, 0.0, 2.4, 0.785, 0.04, 0.04)
"""A Panda pose with the TCP well inside the default workspace box."""
GOOD_ACTION = np.array([0.1, -0.05, 0.05, 0.02, 0.0, 0.0, -1.0], np.float32)
INSTRUCTION = "pick up the red cube and move it to the green goal"
JOINTS = (*PANDA_ARM_JOINTS, *PANDA_FINGER_JOINTS)
FUZZ_SETTINGS = dict(deadline=None, database=None, print_blob=True,
                     suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                            HealthCheck.large_base_example, HealthCheck.filter_too_much])


def config(**overrides) -> PolicyServerConfig:
    """Limits tighter than the defaults, so that clipping, step limits and the box all come into play."""
    return PolicyServerConfig(**{"action_limit": 0.8, "max_step_translation_m": 0.03, "max_step_rotation_rad": 0.05,
                                 "stale_after_s": 0.5, "control_rate_hz": 20.0, "instruction": INSTRUCTION,
                                 **overrides})


def fuzz_settings(max_examples: int):
    return settings(max_examples=max_examples, **FUZZ_SETTINGS)


# -- messages ------------------------------------------------------------------------------------------------
def stamp_msg(seconds: float):
    from builtin_interfaces.msg import Time

    sec = int(min(max(math.floor(seconds), -2**31), 2**31 - 1))
    return Time(sec=sec, nanosec=min(max(int((seconds - math.floor(seconds)) * 1e9), 0), 999_999_999))


STAMP_OFFSETS = st.one_of(
    st.just(0.0), st.just(0.0), st.floats(-0.4, 0.0),           # fresh
    st.floats(-1e6, -0.6), st.just(-2e9),                       # old, out of order, near the epoch
    st.floats(0.0, 0.09),                                       # ahead by clock skew
    st.floats(0.2, 1e6),                                        # in the future
)
"""Header stamp minus the receiver's clock, in seconds."""


def image_msg(height: int, width: int, encoding: str, step: int, data: bytes, stamp: float):
    from sensor_msgs.msg import Image

    msg = Image(height=height, width=width, encoding=encoding, step=step)
    msg.header.stamp = stamp_msg(stamp)
    msg.data = data
    return msg


@st.composite
def images(draw, hw=HW, huge: tuple[int, int] = (2048, 2048)):
    """Camera images: the right one now and then; wrong encodings, sizes, steps and byte counts; empty;
    huge (`huge` pixels, complete). Stamped 0: `restamp` with a drawn offset from the receiver's clock."""
    h0, w0 = hw
    shape = draw(st.sampled_from(["right", "right", "right", "empty", "huge", "other"]))
    if shape == "right":
        height, width = h0, w0
    elif shape == "empty":
        height, width = 0, 0
    elif shape == "huge":
        height, width = huge
    else:
        height = draw(st.sampled_from([1, h0 - 1, h0 + 1, 2 * h0, 2**31, 2**32 - 1]))
        width = draw(st.sampled_from([1, w0 - 1, w0 + 1, w0 // 2, 2**32 - 1]))
    encoding = draw(st.one_of(st.sampled_from(["rgb8", "bgr8"]), st.sampled_from(["rgb8", "bgr8"]),
                              st.sampled_from(["mono8", "rgba8", "bgra8", "16UC1", "32FC1", "yuv422", "RGB8", ""]),
                              st.text(max_size=12)))
    row = width * 3
    step = draw(st.sampled_from([row, row, row, row + 1, row + 64, max(row - 1, 0), 0, 2**32 - 1]))
    step = min(step, 2**32 - 1)
    full = step * height
    size = draw(st.sampled_from(["full", "full", "short", "long", "none", "odd"]))
    n = {"full": full, "short": full - 1, "long": full + 3, "none": 0, "odd": draw(st.integers(0, 70_000))}[size]
    if not 0 <= n <= 16 * 2**20:
        n = draw(st.integers(0, 4096))
    seed = draw(st.integers(0, 2**32 - 1))
    data = np.random.default_rng(seed).integers(0, 256, n, np.uint8).tobytes()
    return image_msg(height, width, encoding, step, data, 0.0)


def joint_msg(names, positions, stamp: float, velocity=(), effort=()):
    from sensor_msgs.msg import JointState

    msg = JointState(name=list(names), position=[float(v) for v in positions], velocity=[float(v) for v in velocity],
                     effort=[float(v) for v in effort])
    msg.header.stamp = stamp_msg(stamp)
    return msg


ANY_FLOAT = st.floats(allow_nan=True, allow_infinity=True)
JOINT_VALUE = st.one_of(st.floats(-3.0, 3.0), st.floats(-3.0, 3.0), ANY_FLOAT, st.sampled_from([1e300, -1e300, 5e-324]))


@st.composite
def joint_states(draw):
    """Joint states: all nine joints in any order, some missing, unknown or duplicated names, name and
    position arrays of different lengths, NaN/inf/huge positions. Stamped 0, as images."""
    names = list(JOINTS)
    how = draw(st.sampled_from(["shuffled", "missing", "extra", "duplicate", "random", "empty"]))
    if how == "shuffled":
        names = draw(st.permutations(names))
    elif how == "missing":
        names = [n for n in names if n not in draw(st.sets(st.sampled_from(names), min_size=1))]
    elif how == "extra":
        names = names + draw(st.lists(st.sampled_from(["panda_joint8", "PANDA_JOINT1", "panda_joint1 ", "", "x" * 300,
                                                        "finger"]), min_size=1, max_size=5))
        names = draw(st.permutations(names))
    elif how == "duplicate":
        names = names + [draw(st.sampled_from(names))]
    elif how == "random":
        names = draw(st.lists(st.one_of(st.sampled_from(names), st.text(max_size=20)), max_size=30))
    else:
        names = []
    length = len(names) + draw(st.sampled_from([0, 0, 0, -1, 1, 7]))
    positions = draw(st.lists(JOINT_VALUE, min_size=max(length, 0), max_size=max(length, 0)))
    velocity = draw(st.lists(ANY_FLOAT, max_size=10))
    return joint_msg(names, positions, 0.0, velocity=velocity)


def instructions(utf8_only: bool = False):
    """Instructions: empty, short odd text (control characters, right-to-left marks, emoji, NUL), very long."""
    chars = st.characters(codec="utf-8") if utf8_only else st.characters()
    return st.one_of(
        st.just(""), st.just(INSTRUCTION),
        st.text(chars, max_size=80),
        st.lists(st.sampled_from(["\x00", "\u202e", "\ufeff", "\U0001f916", "\n", "\t", "\\", "%s", "{instruction}",
                                  "pick"]), max_size=20).map("".join),
        st.builds(lambda n, c: c * n, st.integers(400, 200_000), st.sampled_from(["a", "pick ", "\U0001f916", "\x00"])),
    )


def goal_msg(x: float, y: float, z: float):
    from geometry_msgs.msg import PointStamped

    msg = PointStamped()
    msg.point.x, msg.point.y, msg.point.z = float(x), float(y), float(z)
    return msg


def goals():
    return st.builds(goal_msg, JOINT_VALUE, JOINT_VALUE, JOINT_VALUE)


def string_msg(text: str):
    from std_msgs.msg import String

    return String(data=text)


def messages(kind: str, utf8_only: bool = False, huge=(2048, 2048)):
    """Adversarial messages of one subscribed topic's type."""
    return {"image": images(huge=huge), "joints": joint_states(),
            "instruction": instructions(utf8_only).map(string_msg), "goal": goals()}[kind]


def restamp(msg, stamp: float):
    """Images and joint states get `stamp` (the others carry none the node reads)."""
    if hasattr(msg, "header") and not hasattr(msg, "point"):
        msg.header.stamp = stamp_msg(stamp)
    return msg


RAW_ACTIONS = st.one_of(
    st.lists(st.floats(-1.0, 1.0), min_size=7, max_size=7),
    st.lists(st.floats(-1e6, 1e6), min_size=7, max_size=7),
    st.lists(ANY_FLOAT, min_size=7, max_size=7),
    st.lists(st.floats(-2.0, 2.0), max_size=12),
    st.just("raise"),
)
"""What the policy answers: in range, far out of range, NaN/inf, the wrong length, an exception."""


# -- limits ---------------------------------------------------------------------------------------------------
def command_violations(action, held: bool, cfg: PolicyServerConfig, tcp=None) -> list[str]:
    """How a sent command (normalised, 7 values) breaks the configured limits (empty: it does not)."""
    a = np.asarray(action, np.float64)
    if a.shape != (7,) or not np.all(np.isfinite(a)):
        return [f"not 7 finite values: {a.tolist()}"]
    out, eps = [], 1e-5
    if np.abs(a).max() > cfg.action_limit * (1 + eps):
        out.append(f"beyond action_limit: {a.tolist()}")
    if np.linalg.norm(a[:3]) * cfg.pos_scale_m > cfg.max_step_translation_m * (1 + eps):
        out.append(f"translation step {np.linalg.norm(a[:3]) * cfg.pos_scale_m:.4f} m")
    if np.linalg.norm(a[3:6]) * cfg.rot_scale_rad > cfg.max_step_rotation_rad * (1 + eps):
        out.append(f"rotation step {np.linalg.norm(a[3:6]) * cfg.rot_scale_rad:.4f} rad")
    if held and np.any(a[:6] != 0):
        out.append(f"a hold that moves: {a.tolist()}")
    if tcp is not None:
        lo, hi = np.asarray(cfg.workspace_min), np.asarray(cfg.workspace_max)
        after = tcp + a[:3] * cfg.pos_scale_m
        outside = lambda p: np.maximum(lo - p, 0) + np.maximum(p - hi, 0)  # noqa: E731
        if np.any(outside(after) > outside(tcp) + 1e-9):
            out.append(f"leaves the workspace box: tcp {tcp.tolist()} -> {after.tolist()}")
    return out


def twist_violations(twist, cfg: PolicyServerConfig) -> list[str]:
    """How a published TwistStamped (m/s, rad/s) breaks the limits, at the node's control rate."""
    rate, eps = cfg.control_rate_hz, 1e-5
    linear = np.array([twist.twist.linear.x, twist.twist.linear.y, twist.twist.linear.z])
    angular = np.array([twist.twist.angular.x, twist.twist.angular.y, twist.twist.angular.z])
    if not (np.all(np.isfinite(linear)) and np.all(np.isfinite(angular))):
        return ["non-finite twist"]
    out = []
    if np.linalg.norm(linear) > cfg.max_step_translation_m * rate * (1 + eps):
        out.append(f"linear {np.linalg.norm(linear):.4f} m/s")
    if np.linalg.norm(angular) > cfg.max_step_rotation_rad * rate * (1 + eps):
        out.append(f"angular {np.linalg.norm(angular):.4f} rad/s")
    if np.abs(linear).max() > cfg.action_limit * cfg.pos_scale_m * rate * (1 + eps):
        out.append("linear beyond action_limit")
    return out


# -- the ROS-free harness ------------------------------------------------------------------------------------
class StubPolicy:
    """A policy with the shipped checkpoint's inputs whose next answer is set by the test (an action, or
    "raise")."""

    def __init__(self, hw=HW):
        cfg = SimpleNamespace(proprio_keys=("qpos", "tcp_pose", "goal_pos"), proprio_dims=(9, 7, 3))
        self.processor = SimpleNamespace(config=cfg, image_hw=hw)
        self.tasks: list = []
        self.compiled = None
        self.output = GOOD_ACTION
        self.bad_inputs: list[str] = []
        """What reached the policy that should not have (an image of another shape, non-finite proprio)."""

    def goal_inputs(self, env_id=None):
        return ("goal_pos",)  # the shipped checkpoint's PickCube states its goal

    def act(self, image, instruction, proprio):
        if image.shape != (*self.processor.image_hw, 3) or image.dtype != np.uint8:
            self.bad_inputs.append(f"image {image.shape} {image.dtype}")
        self.bad_inputs += [f"non-finite {k}" for k, v in proprio.items() if not np.all(np.isfinite(v))]
        if isinstance(self.output, str):
            raise RuntimeError("policy failure injected by the fuzzer")
        with np.errstate(over="ignore"):
            return np.asarray(self.output, np.float32)


@dataclass
class Case:
    kind: str
    refused: str | None
    """Why the message was refused (None: taken)."""
    held: bool
    reason: str
    violations: list[str] = field(default_factory=list)
    reported: bool = True
    """A refused message: its hold and the WARN status name it."""
    recovered: bool = True
    """The first tick after good inputs gave a normal (moving) command."""
    reaction_s: float = 0.0
    """Message in -> command out (the tick after it)."""


class Harness:
    """PolicyRunner + SafetyLayer fed the way policy_server's callbacks feed them, on a simulated clock."""

    def __init__(self, cfg: PolicyServerConfig | None = None):
        self.cfg = cfg or config()
        self.policy = StubPolicy()
        self.runner = PolicyRunner(self.cfg, policy=self.policy)
        self.tcp = TcpPose(self.cfg.base_pose)
        self.now = time.time()
        self.image = np.random.default_rng(0).integers(0, 256, (*HW, 3), np.uint8)

    def feed(self, kind: str, msg) -> str | None:
        """The node's callback for `kind`; returns why the message was refused, None if it was taken."""
        from stare_ros.ros_common import to_seconds

        cfg, runner = self.cfg, self.runner
        try:
            if kind == "image":
                stamp = input_stamp(to_seconds(msg.header.stamp), self.now, cfg.max_future_stamp_s)
                runner.set_image(image_array(msg, *runner.image_hw), stamp)
            elif kind == "joints":
                q = joint_positions(msg.name, msg.position, (*cfg.arm_joints, *cfg.finger_joints))
                runner.set_joints(q, input_stamp(to_seconds(msg.header.stamp), self.now, cfg.max_future_stamp_s))
            elif kind == "instruction":
                runner.set_instruction(instruction_text(msg.data, cfg.max_instruction_chars))
            else:
                runner.set_goal(goal_point(msg.point))
        except InputError as err:
            runner.reject(kind, str(err))
            return str(err)
        return None

    def good_inputs(self) -> None:
        for kind, msg in (("image", image_msg(*HW, "rgb8", HW[1] * 3, self.image.tobytes(), self.now)),
                          ("joints", joint_msg(JOINTS, REST_Q, self.now)),
                          ("instruction", string_msg(INSTRUCTION)), ("goal", goal_msg(0.05, 0.1, 0.2))):
            assert self.feed(kind, msg) is None, kind

    def check(self, tick) -> list[str]:
        joints = self.runner._joints
        tcp = None if joints is None else self.tcp.base(joints[:7])[0]
        return command_violations(tick.command.action, tick.command.held, self.cfg, tcp)

    def case(self, kind: str, msg, raw, stamp_offset: float = 0.0) -> Case:
        """One fuzz case (see the module docstring), the message stamped `stamp_offset` from the clock;
        raises only if the runner itself raises."""
        self.now += 0.05
        self.good_inputs()
        self.policy.output = GOOD_ACTION
        before = self.runner.tick(self.now)
        violations = self.check(before)
        self.now += 0.05
        self.policy.output = raw
        restamp(msg, self.now + stamp_offset)
        start = time.perf_counter()
        refused = self.feed(kind, msg)
        tick = self.runner.tick(self.now)
        reaction = time.perf_counter() - start
        command = tick.command
        violations += self.check(tick)
        reported = True
        if refused:
            status = self.runner.status()
            reported = (command.held and f"bad {kind}" in command.reason and status.level >= WARN
                        and kind in status.message)
        self.now += 0.05
        self.good_inputs()
        self.policy.output = GOOD_ACTION
        after = self.runner.tick(self.now)
        violations += self.check(after)
        recovered = not before.command.held and not after.command.held
        violations += [f"the policy was given {what}" for what in self.policy.bad_inputs]
        self.policy.bad_inputs.clear()
        return Case(kind, refused, command.held, command.reason, violations, reported, recovered, reaction)


# -- through real DDS ----------------------------------------------------------------------------------------
NOT_UTF8 = tuple(b"\x00\x01\x00\x00\x0d\x00\x00\x00pick up " + junk + b"\x00"
                 for junk in (b"\xff\xfe\xc3\x28", b"\xed\xa0\x80\x00", b"\x00\x00\x00\x00"))
"""std_msgs/String in CDR whose bytes are not UTF-8 (a C++ publisher can send them; rclpy cannot build them)."""


def _seconds(stamp) -> float:
    return stamp.sec + stamp.nanosec * 1e-9


class DdsFuzzer:
    """A real policy_server (the StubPolicy, or a checkpoint's) in `graph` (`ros_harness.Graph`), fed by a
    real publisher one message at a time: each adversarial message, then good inputs. Records every
    command and twist the node publishes, and per case whether a refused message was held and reported
    (PolicyAction reason, WARN in /diagnostics) and how long the first tick after good input took."""

    def __init__(self, graph, cfg: PolicyServerConfig, checkpoint: str = ""):
        from diagnostic_msgs.msg import DiagnosticArray
        from geometry_msgs.msg import PointStamped, TwistStamped
        from sensor_msgs.msg import Image, JointState
        from std_msgs.msg import String

        from ros_harness import wait_for
        from stare_interfaces.msg import PolicyAction
        from stare_ros.nodes.policy_server import PolicyServer
        from stare_ros.ros_common import LATCHED, RELIABLE

        class CountingServer(PolicyServer):
            """The real node, counting the messages its callbacks are done with, and when."""

            def __init__(self, **kwargs):
                self.seen = dict.fromkeys(KINDS, 0)
                self.taken_at = 0.0
                super().__init__(**kwargs)

            def _count(self, kind):
                self.seen[kind] += 1
                self.taken_at = self.get_clock().now().nanoseconds * 1e-9

            def _on_image(self, msg):
                super()._on_image(msg)
                self._count("image")

            def _on_joints(self, msg):
                super()._on_joints(msg)
                self._count("joints")

            def _on_instruction(self, msg):
                super()._on_instruction(msg)
                self._count("instruction")

            def _on_goal(self, msg):
                super()._on_goal(msg)
                self._count("goal")

        self.cfg, self.wait_for, self.cases = cfg, wait_for, []
        params = {f: getattr(cfg, f) for f in ("action_limit", "max_step_translation_m", "max_step_rotation_rad",
                                               "stale_after_s", "control_rate_hz", "instruction", "dry_run")}
        self.server = graph.start(CountingServer, checkpoint=checkpoint, **params)
        if not checkpoint:
            self.server.runner.policy = StubPolicy()
        self.hw = self.server.runner.image_hw
        probe = graph.node("fuzz_probe")
        self.actions = graph.recorder(probe, PolicyAction, "/policy_server/action")
        self.twists = graph.recorder(probe, TwistStamped, "/servo_node/delta_twist_cmds")
        self.diags = graph.recorder(probe, DiagnosticArray, "/diagnostics")
        self.feeder = graph.node("fuzz_feeder")
        self.pubs = {"image": self.feeder.create_publisher(Image, "/camera/image_raw", RELIABLE),
                     "joints": self.feeder.create_publisher(JointState, "/joint_states", RELIABLE),
                     "instruction": self.feeder.create_publisher(String, "/instruction", LATCHED),
                     "goal": self.feeder.create_publisher(PointStamped, "/goal_point", LATCHED)}
        wait_for(lambda: all(p.get_subscription_count() > 0 for p in self.pubs.values()), 15.0, "subscriptions")
        self.image = np.random.default_rng(0).integers(0, 256, (*self.hw, 3), np.uint8).tobytes()
        self.lost = 0

    def clock(self) -> float:
        return self.feeder.get_clock().now().nanoseconds * 1e-9

    def publish(self, kind: str, msg, timeout_s: float = 10.0) -> None:
        count = self.server.seen[kind]
        self.pubs[kind].publish(msg)
        try:
            self.wait_for(lambda: self.server.seen[kind] > count, timeout_s, f"the node to take a {kind} message")
        except AssertionError:
            self.lost += 1
            raise

    def good(self) -> float:
        """Good inputs; returns the time from the last one taken to the first command that moves the arm,
        which must be the first or second published after it (a tick may have read its inputs just before
        they came); AssertionError otherwise."""
        h, w = self.hw
        for kind, msg in (("instruction", string_msg(INSTRUCTION)), ("goal", goal_msg(0.05, 0.1, 0.2))):
            self.publish(kind, msg)
        now = self.clock()  # stamped after the slow part, so a loaded machine does not make them stale
        for kind, msg in (("image", image_msg(h, w, "rgb8", w * 3, self.image, now)),
                          ("joints", joint_msg(JOINTS, REST_Q, now))):
            self.publish(kind, msg)
        taken = self.server.taken_at

        def after():
            return [a for a in list(self.actions)[-50:] if _seconds(a.header.stamp) > taken]

        self.wait_for(lambda: len(after()) >= 2 or any(not a.held for a in after()), 10.0, "ticks after good input")
        moving = [a for a in after()[:2] if not a.held]
        assert moving, f"no motion in the two commands after good input: {[a.reason for a in after()[:2]]}"
        return _seconds(moving[0].header.stamp) - taken

    def case(self, kind: str, msg) -> Case:
        from diagnostic_msgs.msg import DiagnosticStatus

        runner = self.server.runner
        before = dict(runner.bad_input)
        self.publish(kind, msg)
        refused = runner.bad_input.get(kind)
        reported = True
        if refused is not None and before.get(kind) != refused:
            try:
                self.wait_for(lambda: any(a.held and f"bad {kind}" in a.reason for a in list(self.actions)[-20:]),
                              5.0, f"a hold naming the bad {kind}")
                self.wait_for(lambda: any(s.level == DiagnosticStatus.WARN and kind in s.message
                                          for d in list(self.diags)[-5:] for s in d.status), 5.0, "a WARN")
            except AssertionError:
                reported = False
        else:
            refused = None
        try:
            reaction, recovered = self.good(), True
        except AssertionError as err:
            reaction, recovered = float("nan"), False
            print(f"{kind}: not recovered: {err}", file=sys.stderr)
        case = Case(kind, refused, refused is not None, refused or "", [], reported, recovered, reaction)
        self.cases.append(case)
        return case

    def violations(self) -> list[str]:
        """Every published command or twist beyond the limits."""
        out = [f"{v} ({a.reason})" for a in list(self.actions) for v in command_violations(a.command, a.held, self.cfg)]
        return out + [v for t in list(self.twists) for v in twist_violations(t, self.cfg)]
