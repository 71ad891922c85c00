"""The policy_server without ROS: keeps the latest inputs with their stamps, decides each control tick
whether the policy may act (a policy is loaded, inputs are fresh and valid, no e-stop), runs it, and
passes its action through the safety layer. Thread-safe: inputs, ticks and checkpoint swaps may come
from different executor threads; the policy runs outside the lock."""

from __future__ import annotations

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


@dataclass
class Status:
    level: int
    message: str
    values: dict[str, str] = field(default_factory=dict)


def _load_policy(path: str, device: str):
    from stare_policy.policy import VLAPolicy

    return VLAPolicy.load(path, device)


class PolicyRunner:
    def __init__(self, config: PolicyServerConfig, policy=None):
        self.config = config
        self.safety = SafetyLayer(config)
        self.tcp = TcpPose(config.base_pose)
        self._lock = threading.Lock()
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
        if policy is None and config.checkpoint:
            self.load(config.checkpoint)

    # -- checkpoints --------------------------------------------------------------------------------
    def load(self, path: str) -> None:
        """Load a checkpoint and swap it in; raises (leaving the current policy) if it cannot be used."""
        if not Path(path).is_dir():
            raise FileNotFoundError(f"checkpoint {path} is not a directory")
        policy = _load_policy(path, self.config.device)
        missing = [k for k in policy.processor.config.proprio_keys if k not in ("qpos", "tcp_pose", "goal_pos")]
        if missing:
            raise ValueError(f"checkpoint {path} needs proprio inputs this server cannot give: {missing}")
        with self._lock:
            self.policy, self.checkpoint = policy, str(path)
            if not self.config.instruction and not self._instruction:
                self._instruction = self._default_instruction(policy)

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

    def set_goal(self, goal: np.ndarray) -> None:
        with self._lock:
            self._goal = np.asarray(goal, np.float32)

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
    def instruction(self) -> str:
        return self._instruction

    def ready_observation(self) -> float | None:
        """Lock-step: the stamp of an image + joint state pair (same stamp) not acted on yet, else None."""
        with self._lock:
            if (self._image is not None and self._joints is not None and self._image_stamp == self._joint_stamp
                    and self._image_stamp != self._acted_stamp):
                return self._image_stamp
        return None

    # -- a control tick --------------------------------------------------------------------------------
    def tick(self, now: float | None = None) -> Tick:
        now = time.time() if now is None else now
        cfg = self.config
        with self._lock:
            policy, image, joints, goal = self.policy, self._image, self._joints, self._goal
            image_stamp, joint_stamp, instruction = self._image_stamp, self._joint_stamp, self._instruction
            bad, rejections = dict(self.bad_input), self._rejections
        self.ticks += 1
        why = []
        if self.safety.estopped:
            why.append("e-stop")
        if policy is None:
            why.append("no checkpoint loaded")
        for kind, reason in bad.items():
            why.append(f"bad {kind}: {reason}")
        if image is None and "image" not in bad:
            why.append("no image")
        elif image is not None and now - image_stamp > cfg.stale_after_s:
            why.append(f"stale image ({now - image_stamp:.2f} s old)")
        if joints is None and "joints" not in bad:
            why.append("no joint state")
        elif joints is not None and now - joint_stamp > cfg.stale_after_s:
            why.append(f"stale joint state ({now - joint_stamp:.2f} s old)")
        if policy is not None and "goal_pos" in policy.processor.config.proprio_keys and goal is None:
            why.append("no goal point")
        if not instruction:
            why.append("no instruction")
        if why:
            return self._held(Tick(self.safety.hold(*why), None, None))
        proprio = {"qpos": joints.astype(np.float32), "tcp_pose": self.tcp.world(joints[:7])}
        if goal is not None:
            proprio["goal_pos"] = goal
        start = time.perf_counter()
        try:
            raw = np.asarray(policy.act(image, instruction, proprio), np.float32)
        except Exception as err:  # a policy failure must not take the node down: hold and report
            self.reject("policy", f"{type(err).__name__}: {err}")
            return self._held(Tick(self.safety.hold(f"policy failed: {err}"), None, image_stamp))
        seconds = time.perf_counter() - start
        with self._lock:
            self.bad_input.pop("policy", None)
            self._acted_stamp = image_stamp
            went_bad = self._rejections != rejections
        if went_bad:  # a bad message arrived while the policy ran: its action must not move the robot
            return self._held(Tick(self.safety.hold("bad input while the policy ran"), raw, image_stamp, seconds))
        if now + seconds - min(image_stamp, joint_stamp) > cfg.stale_after_s:
            return self._held(Tick(self.safety.hold(f"stale inputs after {seconds:.2f} s of inference"), raw,
                                   image_stamp, seconds))
        tcp_base, _ = self.tcp.base(joints[:7])
        command = self.safety.filter(raw, tcp_base)
        tick = Tick(command, raw, image_stamp, seconds)
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
