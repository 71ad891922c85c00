"""Scripted closed-loop experts: end-effector controllers that read the simulator's privileged state.

Motion-planner demonstrations are open-loop joint trajectories with trapezoidal velocity profiles: the
command at a given pose depends on how far along a segment the arm is, which one camera frame cannot show,
and every segment starts and ends at rest. A proportional controller towards a phase's waypoint gives
commands that are a function of what the policy observes (where the object is relative to the gripper,
whether the fingers are closed), so imitation learns them from a few hundred episodes and the learned
policy corrects its own drift the way the expert does.

Each script acts in the task's own `pd_ee_delta_pose` control (normalised to [-1, 1]) and keeps the
gripper's orientation; it is recorded with the same step log as the planner's demonstrations.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from sim_training.data import Episode
from sim_training.demos.expert import DemoResult, _StepLog
from sim_training.envs import make_env
from sim_training.tasks import TaskSpec, get_task

EE_STEP_LIMIT_M = 0.1
"""Panda `pd_ee_delta_pose`: a normalised translation command of 1 moves the target 0.1 m."""


class NoScriptError(RuntimeError):
    """No scripted expert is written for the task."""


def _position(actor) -> np.ndarray:
    return np.asarray(actor.pose.p.cpu().numpy()).reshape(-1, 3)[0].astype(np.float64)


def _move(target: np.ndarray, tcp: np.ndarray, gripper: float, gain: float, max_step: float) -> np.ndarray:
    delta = np.clip(gain * (target - tcp), -max_step, max_step) / EE_STEP_LIMIT_M
    return np.concatenate([delta, np.zeros(3), [gripper]]).astype(np.float32)


def _finger_width(base) -> float:
    qpos = np.asarray(base.agent.robot.get_qpos().cpu().numpy()).reshape(-1)
    return float(qpos[7] + qpos[8])


class _GraspScript:
    """The pick-up both grasping scripts share: above the object -> down to its centre -> close, until the
    fingers are seen closed on it (then phase "carry").

    Each phase follows from what the policy observes: closed fingers at the cube always mean "carry". (A
    fixed number of still steps after the close command made that same observation mostly mean "stay",
    and the learned policy stayed for ever.)
    """

    hover_m = 0.06
    gain = 0.7
    max_step_m = 0.06
    max_close_steps = 10
    closed_m = 0.07
    """Finger opening (open: 0.08 m) below which the fingers have closed on the 4 cm cube."""

    def reset(self) -> None:
        self.phase = "above"
        self.closing = 0

    def _grasp(self, tcp: np.ndarray, obj: np.ndarray, width: float) -> np.ndarray | None:
        """The action while picking up; None once the phase is past the grasp (same step as it gets there)."""
        if self.phase == "above":
            target = obj + [0.0, 0.0, self.hover_m]
            if np.linalg.norm(target - tcp) < 0.012:
                self.phase = "down"
        if self.phase == "down":
            target = obj
            if np.linalg.norm(target - tcp) < 0.008:
                self.phase = "close"
        if self.phase == "close":
            self.closing += 1
            if (self.closing > 1 and width < self.closed_m) or self.closing > self.max_close_steps:
                self.phase = "carry"
            else:
                return _move(tcp, tcp, -1.0, self.gain, self.max_step_m)
        if self.phase in ("above", "down"):
            return _move(target, tcp, 1.0, self.gain, self.max_step_m)
        return None


class PickCubeScript(_GraspScript):
    """Pick up the cube, then carry it to the goal as soon as the fingers are seen closed on it."""

    def __call__(self, env) -> np.ndarray:
        base = env.unwrapped
        tcp, cube, goal = _position(base.agent.tcp), _position(base.cube), _position(base.goal_site)
        action = self._grasp(tcp, cube, _finger_width(base))
        return action if action is not None else _move(goal, tcp, -1.0, self.gain, self.max_step_m)


class StackCubeScript(_GraspScript):
    """Pick up cube A -> lift -> over cube B -> lower until A rests on B -> open -> rise.

    While carrying, the command moves cube A (not the fingertip) towards its target, so a grasp off the
    cube's centre does not offset the stack. A is lifted clear of B's top before it moves sideways.
    """

    place_step_m = 0.02
    """Slower steps for the last centimetres above B, so the cube arrives without swinging."""
    open_m = 0.075
    max_open_steps = 8
    cube_m = 0.04

    def reset(self) -> None:
        super().reset()
        self.opening = 0

    def __call__(self, env) -> np.ndarray:
        base = env.unwrapped
        tcp, cube_a, cube_b = _position(base.agent.tcp), _position(base.cubeA), _position(base.cubeB)
        width = _finger_width(base)
        action = self._grasp(tcp, cube_a, width)
        if action is not None:
            return action
        if self.phase == "carry":
            on_b = cube_b + [0.0, 0.0, self.cube_m]
            above_b = on_b + [0.0, 0.0, self.hover_m]
            if cube_a[2] < on_b[2] + 0.02 and np.linalg.norm((cube_a - cube_b)[:2]) > 0.01:
                goal = np.array([cube_a[0], cube_a[1], above_b[2]])  # clear B's top first
            elif np.linalg.norm((cube_a - cube_b)[:2]) > 0.006:
                goal = above_b
            else:
                goal = on_b + [0.0, 0.0, 0.002]
            if np.linalg.norm(cube_a - goal) < 0.004 and goal[2] < above_b[2] - 0.01:
                self.phase = "release"
            else:
                step = self.place_step_m if goal[2] < above_b[2] - 0.01 else self.max_step_m
                return _move(tcp + (goal - cube_a), tcp, -1.0, self.gain, step)
        if self.phase == "release":
            self.opening += 1
            if width > self.open_m or self.opening > self.max_open_steps:
                self.phase = "rise"
            else:
                return _move(tcp, tcp, 1.0, self.gain, self.max_step_m)
        if self.phase == "rise":
            target = cube_a + [0.0, 0.0, self.hover_m]
        return _move(target, tcp, 1.0, self.gain, self.max_step_m)


class _SlideCubeScript:
    """Closed fingers beside the cube, on the side away from the goal -> down to the cube's mid-height ->
    slide along x until the cube is at the goal's centre (the goal is a disc; success is anywhere in it).

    `contact_m` is the fingertip's signed x offset from the cube's centre while sliding: negative pushes
    it forwards (+x), positive drags it back towards the robot.
    """

    contact_m = 0.0
    hover_m = 0.06
    height_m = 0.02
    gain = 0.7
    max_step_m = 0.06
    slide_step_m = 0.03

    def reset(self) -> None:
        self.phase = "above"

    def __call__(self, env) -> np.ndarray:
        base = env.unwrapped
        tcp, cube, goal = _position(base.agent.tcp), _position(base.obj), _position(base.goal_region)
        contact = np.array([cube[0] + self.contact_m, cube[1], self.height_m])
        if self.phase == "above":
            target = contact + [0.0, 0.0, self.hover_m]
            if np.linalg.norm(target - tcp) < 0.012:
                self.phase = "down"
        if self.phase == "down":
            target = contact
            if np.linalg.norm(target - tcp) < 0.008:
                self.phase = "slide"
        if self.phase == "slide":
            target = np.array([goal[0] + self.contact_m, cube[1], self.height_m])
            return _move(target, tcp, -1.0, self.gain, self.slide_step_m)
        return _move(target, tcp, -1.0, self.gain, self.max_step_m)


class PushCubeScript(_SlideCubeScript):
    contact_m = -0.035


class PullCubeScript(_SlideCubeScript):
    contact_m = 0.035


SCRIPTS: dict[str, Callable[[], object]] = {
    "PickCube-v1": PickCubeScript,
    "StackCube-v1": StackCubeScript,
    "PushCube-v1": PushCubeScript,
    "PullCube-v1": PullCubeScript,
}


def script_for(spec: TaskSpec):
    if spec.env_id not in SCRIPTS:
        raise NoScriptError(f"no scripted expert for {spec.env_id}; scripted: {', '.join(SCRIPTS)}")
    return SCRIPTS[spec.env_id]()


HOLD_STEPS = 5
"""Steps recorded after the first success: each step stores the observation *before* its action, so
without them the last recorded frame never shows the goal reached (and a policy never sees it held)."""


def perturb(action: np.ndarray, noise: float, rng: np.random.Generator) -> np.ndarray:
    """The command the simulator runs when demonstrations are perturbed (DART, Laskey et al. 2017): Gaussian
    noise of std `noise` (normalised units; 0.1 = 1 cm) on the translation only, so that the recorded
    episode visits states off the expert's path, labelled with the expert's corrections. The gripper
    command and the orientation stay the expert's."""
    executed = action.copy()
    executed[:3] = np.clip(executed[:3] + rng.normal(0.0, noise, 3), -1.0, 1.0)
    return executed


class ScriptedDemoGenerator:
    """Owns a recording env for one task; `generate(seed)` runs the script until success or the step limit,
    then `hold_steps` more steps of the script (at the goal it commands almost no motion).

    With `action_noise` > 0 the simulator executes a perturbed command (`perturb`, seeded by the episode's
    seed) while the expert's own command is recorded as the label."""

    def __init__(self, task: str | TaskSpec, hold_steps: int = HOLD_STEPS, action_noise: float = 0.0):
        if hold_steps < 0:
            raise ValueError(f"hold_steps must be >= 0, got {hold_steps}")
        if not (np.isfinite(action_noise) and action_noise >= 0):
            raise ValueError(f"action_noise must be a finite number >= 0, got {action_noise}")
        self.hold_steps = hold_steps
        self.action_noise = action_noise
        self.spec = get_task(task)
        self.script = script_for(self.spec)
        self.env = _StepLog(make_env(self.spec), self.spec)

    def generate(self, seed: int) -> DemoResult:
        self.env.reset(seed=seed)
        initial_state = self.env.unwrapped.get_state().cpu().numpy().reshape(-1).astype(np.float32)
        self.script.reset()
        rng = np.random.default_rng(seed)
        succeeded_at = None
        for t in range(self.spec.max_episode_steps):
            action = self.script(self.env)
            executed = perturb(action, self.action_noise, rng) if self.action_noise else action
            _, _, _, _, info = self.env.step(action[None], executed[None])
            success = bool(np.asarray(info["success"].cpu()).any())
            if succeeded_at is None and success:
                succeeded_at = t
            if succeeded_at is not None and t - succeeded_at >= self.hold_steps:
                break
        success = succeeded_at is not None and success  # still successful after holding
        arrays = self.env.arrays()
        arrays["initial_state"] = initial_state
        episode = Episode(
            arrays=arrays,
            seed=seed,
            instruction=self.spec.instructions[seed % len(self.spec.instructions)],
            success=success,
            extra={"expert": "scripted", "hold_steps": self.hold_steps, "action_noise": self.action_noise},
        )
        return DemoResult(seed, True, episode, "" if success else "the script did not succeed in time")

    def close(self) -> None:
        self.env.close()
