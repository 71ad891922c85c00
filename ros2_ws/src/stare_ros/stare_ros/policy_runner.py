"""The policy_server without ROS: keeps the latest inputs with their stamps, decides each control tick
whether the policy may act (a policy is loaded, inputs are fresh and valid, no e-stop), runs it, and
passes its action through the safety layer. Thread-safe: inputs, ticks and checkpoint swaps may come
from different executor threads; the policy runs outside the lock."""

from __future__ import annotations

import contextlib
import gc
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from stare_ros.config import PolicyServerConfig
from stare_ros.conversions import TcpPose
from stare_ros.safety import Command, SafetyLayer

OK, WARN, ERROR = 0, 1, 2


@dataclass
class Tick:
    command: Command
    raw: np.ndarray | None
    """The policy's action (None when it did not run)."""
    observation_stamp: float | None
    """Stamp (s) of the image the policy acted on."""
    seconds: float = 0.0
    """Time spent in the policy."""
    rejections: int = -1
    """How many bad inputs the runner had seen when this tick read its inputs (-1: not a policy action)."""
    inputs_stamp: float | None = None
    """Stamp (s) of the older of the image and the joint state the policy acted on: what the last
    staleness check, at publish, measures."""


@dataclass
class Status:
    level: int
    message: str
    values: dict[str, str] = field(default_factory=dict)


def _load_policy(path: str, device: str):
    from stare_policy.policy import VLAPolicy

    return VLAPolicy.load(path, device)


LOAD_WAITS_FOR_TICK_S = 5.0
"""The longest a load waits for the tick in flight (a policy call that hangs must not block swaps)."""


@contextlib.contextmanager
def no_full_collections():
    """No full (generation-2) garbage collection inside: over a compiler's objects each one stops every
    thread for 0.2-0.4 s, several times per compile. What is left at the end is frozen (`gc.freeze`:
    kept, never scanned again) rather than collected in one more such pause; the peak memory is the
    compile's either way."""
    threshold = gc.get_threshold()
    gc.set_threshold(threshold[0], threshold[1], 1_000_000_000)
    try:
        yield
    finally:
        gc.freeze()
        gc.set_threshold(*threshold)


class PolicyRunner:
    def __init__(self, config: PolicyServerConfig, policy=None):
        self.config = config
        self.safety = SafetyLayer(config)
        self.tcp = TcpPose(config.base_pose)
        self._lock = threading.Lock()
        self._acting = 0
        """Ticks running the policy now; a load waits for them (`_idle`) before it starts."""
        self._idle = threading.Condition(self._lock)
        self.policy, self.checkpoint = policy, ""
        self._image = self._image_stamp = None
        self._joints = self._joint_stamp = None
        self._goal: np.ndarray | None = None
        self._instruction = config.instruction
        self._acted_stamp: float | None = None
        self._rejections = 0
        self.bad_input: dict[str, str] = {}
        """Input kind ('image', 'joints', 'policy') -> why its latest message could not be used."""
        self.last_reason = ""
        self.ticks = self.held_ticks = 0
        self.last_held = False
        self._loading = ""
        """The checkpoint being loaded (and compiled), during which ticks hold."""
        if policy is None and config.checkpoint:
            from stare_policy.model import CheckpointError

            try:
                self.load(config.checkpoint)
            except CheckpointError as err:  # a node that cannot start says why in one line
                raise ValueError(f"checkpoint: {err}") from None

    # -- checkpoints --------------------------------------------------------------------------------
    def load(self, path: str) -> None:
        """Load a checkpoint and swap it in; raises (leaving the current policy) if it cannot be used."""
        if not Path(path).is_dir():
            raise FileNotFoundError(f"checkpoint {path} is not a directory")
        if self.config.torch_threads:
            import torch

            torch.set_num_threads(self.config.torch_threads)
        compiling = self.config.compile_policy
        # The arm holds still, on time, until the new policy is in. Beside a load the running policy's tick
        # is slow (each of its torch calls waits for the interpreter lock: 130-170 ms intervals, a missed
        # tick, eager), and compiled it may not run at all: building and compiling another model can
        # invalidate its guards (they cover process-wide state, e.g. transformers' registry of model
        # classes), and its next call recompiles or waits for dynamo's compile lock (up to 14 s).
        with self._lock:
            self._loading = str(path)
            # and the tick in flight finishes first: beside the load it would take twice as long
            self._idle.wait_for(lambda: self._acting == 0, timeout=LOAD_WAITS_FOR_TICK_S)
        try:
            with no_full_collections() if compiling else contextlib.nullcontext():
                policy = _load_policy(path, self.config.device)
                missing = [k for k in policy.processor.config.proprio_keys
                           if k not in ("qpos", "tcp_pose", "goal_pos")]
                if missing:
                    raise ValueError(f"checkpoint {path} needs proprio inputs this server cannot give: {missing}")
                if compiling:
                    import torch._inductor.config as inductor

                    # one compile worker: the other core stays with the control loop (two missed a tick)
                    inductor.compile_threads = 1
                    policy.compile()
                self._warm_up(policy, self._instruction or self._default_instruction(policy))
            with self._lock:
                self.policy, self.checkpoint = policy, str(path)
                if not self.config.instruction and not self._instruction:
                    self._instruction = self._default_instruction(policy)
        finally:
            with self._lock:
                self._loading = ""

    @staticmethod
    def _warm_up(policy, instruction: str) -> None:
        """One action now, on an observation of the checkpoint's shapes: the first call of a policy is
        slow (allocations; compiled, the compile itself), and no control tick should wait for it."""
        cfg = policy.processor.config
        proprio = {key: np.zeros(dim, np.float32) for key, dim in zip(cfg.proprio_keys, cfg.proprio_dims)}
        policy.act(np.zeros((*policy.processor.image_hw, 3), np.uint8), instruction, proprio)

    def _default_instruction(self, policy) -> str:
        try:
            return policy.default_instruction(self.config.task)
        except KeyError:
            return policy.default_instruction() if policy.tasks else ""

    @property
    def image_hw(self) -> tuple[int, int] | None:
        policy = self.policy
        return None if policy is None else tuple(policy.processor.image_hw)

    # -- inputs ----------------------------------------------------------------------------------------
    def set_image(self, image: np.ndarray, stamp: float) -> None:
        with self._lock:
            self._image, self._image_stamp = image, stamp
            self.bad_input.pop("image", None)

    def set_joints(self, q: np.ndarray, stamp: float) -> None:
        with self._lock:
            self._joints, self._joint_stamp = q, stamp
            self.bad_input.pop("joints", None)

    def set_instruction(self, text: str) -> None:
        with self._lock:
            self._instruction = text
            self.bad_input.pop("instruction", None)

    def set_goal(self, goal: np.ndarray) -> None:
        with self._lock:
            self._goal = np.asarray(goal, np.float32)
            self.bad_input.pop("goal", None)

    def reject(self, kind: str, reason: str) -> None:
        """A message of this kind could not be used: hold until a good one arrives."""
        with self._lock:
            self._rejections += 1
            self.bad_input[kind] = reason
            if kind == "image":
                self._image = None
            elif kind == "joints":
                self._joints = None

    @property
    def rejections(self) -> int:
        """Bad inputs seen so far: a policy action read before the latest one must not be sent."""
        return self._rejections

    @property
    def instruction(self) -> str:
        return self._instruction

    # -- a control tick --------------------------------------------------------------------------------
    def _hold_reasons(self, now: float) -> list[str]:
        """Why the policy may not act now (empty: it may). Call with the lock held."""
        cfg, policy, bad = self.config, self.policy, self.bad_input
        why = []
        if self.safety.estopped:
            why.append("e-stop")
        if policy is None:
            why.append("no checkpoint loaded")
        elif self._loading:
            why.append(f"loading {self._loading}")
        # A policy failure holds its own tick only (and stays in the status until the policy answers again):
        # holding for it here would keep the policy from ever running again.
        why += [f"bad {kind}: {reason}" for kind, reason in bad.items() if kind != "policy"]
        if self._image is None and "image" not in bad:
            why.append("no image")
        elif self._image is not None and now - self._image_stamp > cfg.stale_after_s:
            why.append(f"stale image ({now - self._image_stamp:.2f} s old)")
        if self._joints is None and "joints" not in bad:
            why.append("no joint state")
        elif self._joints is not None and now - self._joint_stamp > cfg.stale_after_s:
            why.append(f"stale joint state ({now - self._joint_stamp:.2f} s old)")
        if policy is not None and "goal_pos" in policy.goal_inputs(self.config.task) and self._goal is None:
            why.append("no goal point")
        if not self._instruction:
            why.append("no instruction")
        return why

    def idle_hold(self, now: float | None = None) -> Tick | None:
        """Between observations (lock-step): a hold saying why the policy may not act, None if it may."""
        with self._lock:
            why = self._hold_reasons(time.time() if now is None else now)
        return self._held(Tick(self.safety.hold(*why), None, None)) if why else None

    def tick(self, now: float | None = None, *, new_observation_only: bool = False) -> Tick | None:
        """One control decision. With `new_observation_only` (lock-step), only for an image + joint state
        pair with one stamp that no tick has taken yet, else None; that pair is taken atomically, so two
        threads never act on the same observation."""
        now = time.time() if now is None else now
        cfg = self.config
        with self._lock:
            if new_observation_only and not (
                    self._image is not None and self._joints is not None and self._image_stamp == self._joint_stamp
                    and self._image_stamp != self._acted_stamp):
                return None
            why = self._hold_reasons(now)
            policy, image, joints, goal = self.policy, self._image, self._joints, self._goal
            image_stamp, joint_stamp, instruction = self._image_stamp, self._joint_stamp, self._instruction
            rejections = self._rejections
            if not why:
                self._acted_stamp = image_stamp
                self._acting += 1
        self.ticks += 1
        if why:
            return self._held(Tick(self.safety.hold(*why), None, None))
        start = time.perf_counter()
        try:  # from the count above on, every exit must pass the `finally` that takes it back
            proprio = {"qpos": joints.astype(np.float32), "tcp_pose": self.tcp.world(joints[:7])}
            if goal is not None:
                proprio["goal_pos"] = goal
            raw = np.asarray(policy.act(image, instruction, proprio), np.float32)
        except Exception as err:  # a policy failure must not take the node down: hold and report
            self.reject("policy", f"{type(err).__name__}: {err}")
            return self._held(Tick(self.safety.hold(f"policy failed: {err}"), None, image_stamp))
        finally:
            with self._lock:
                self._acting -= 1
                self._idle.notify_all()
        seconds = time.perf_counter() - start
        with self._lock:
            self.bad_input.pop("policy", None)
            went_bad = self._rejections != rejections
        if went_bad:  # a bad message arrived while the policy ran: its action must not move the robot
            return self._held(Tick(self.safety.hold("bad input while the policy ran"), raw, image_stamp, seconds))
        if now + seconds - min(image_stamp, joint_stamp) > cfg.stale_after_s:
            return self._held(Tick(self.safety.hold(f"stale inputs after {seconds:.2f} s of inference"), raw,
                                   image_stamp, seconds))
        tcp_base, _ = self.tcp.base(joints[:7])
        command = self.safety.filter(raw, tcp_base)
        tick = Tick(command, raw, image_stamp, seconds, rejections, min(image_stamp, joint_stamp))
        return self._held(tick) if command.held else self._ok(tick)

    def _held(self, tick: Tick) -> Tick:
        self.held_ticks += 1
        self.last_reason, self.last_held = tick.command.reason, True
        return tick

    def _ok(self, tick: Tick) -> Tick:
        self.last_reason, self.last_held = tick.command.reason, False
        return tick

    def status(self) -> Status:
        values = {"checkpoint": self.checkpoint, "instruction": self._instruction,
                  "estop": str(self.safety.estopped), "dry_run": str(self.config.dry_run), "ticks": str(self.ticks),
                  "held_ticks": str(self.held_ticks), "last_reason": self.last_reason}
        values.update({f"bad_{k}": v for k, v in self.bad_input.items()})
        if self.safety.estopped:
            return Status(ERROR, "e-stop engaged: holding still", values)
        if self.bad_input:
            return Status(WARN, "holding still: bad input: " + "; ".join(f"{k}: {v}" for k, v in self.bad_input.items()),
                          values)
        if self.last_held and not self.config.dry_run:
            return Status(WARN, "holding still: " + self.last_reason, values)
        return Status(OK, "dry_run: commanding zero motion" if self.config.dry_run else "running", values)
