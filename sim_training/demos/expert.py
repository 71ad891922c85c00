"""One expert demonstration: ManiSkill3's motion planner, converted to the policy's action space.

The planners act in joint-position control and see no camera. Each planned episode is replayed from the
same initial state in the task's own env (end-effector delta control, policy camera), with ManiSkill3's
closed-loop joint->end-effector action conversion, while every step's policy inputs, action, privileged
state and success flags are recorded.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import gymnasium as gym
import numpy as np

from sim_training.data import Episode
from sim_training.envs import make_env
from sim_training.envs.observation import policy_inputs, privileged_state, success_flags
from sim_training.tasks import TaskSpec, get_task

PLANNER_CONTROL_MODE = "pd_joint_pos"
PLANNER_STEP_LIMIT = 10_000


class NoPlannerError(RuntimeError):
    """ManiSkill3 ships no motion-planning solution for the task."""


def planner_solution(spec: TaskSpec):
    """ManiSkill3's `solve(env, seed, debug, vis)` for the task."""
    if not spec.motion_planner:
        raise NoPlannerError(f"{spec.env_id} has no motion-planning solution in ManiSkill3 (no expert demos)")
    solutions = importlib.import_module("mani_skill.examples.motionplanning.panda.solutions")
    name = "solve" + spec.env_id.split("-")[0]
    if not hasattr(solutions, name):
        raise NoPlannerError(f"ManiSkill3 has no motion-planning solution named {name} for {spec.env_id}")
    return getattr(solutions, name)


class _ActionLog(gym.Wrapper):
    """Keeps the actions the planner sends."""

    def reset(self, **kwargs):
        self.actions: list[np.ndarray] = []
        return self.env.reset(**kwargs)

    def step(self, action):
        self.actions.append(np.asarray(action, dtype=np.float32).copy())
        return self.env.step(action)


class _StepLog(gym.Wrapper):
    """Records, per step, what was observed before the action, the action, and the flags after it."""

    def __init__(self, env: gym.Env, spec: TaskSpec):
        super().__init__(env)
        self.task = spec

    def reset(self, **kwargs):
        obs, info = self.env.reset(**kwargs)
        self.begin(obs)
        return obs, info

    def begin(self, obs) -> None:
        self.steps: list[dict[str, np.ndarray]] = []
        self._obs = obs
        self._after_reset = True

    def step(self, action, executed=None):
        """Record `action` as the step's label; the simulator runs `executed` instead when given (a
        perturbed command whose correction the expert's label teaches)."""
        action_np = np.asarray(action.cpu() if hasattr(action, "cpu") else action, dtype=np.float32).reshape(-1)
        record = {**policy_inputs(self._obs, self.task), "action": action_np}
        state = privileged_state(self.env, self.task, after_reset=self._after_reset)
        record.update({f"priv.{k}": v for k, v in state.items()})
        self._after_reset = False
        obs, reward, terminated, truncated, info = self.env.step(action if executed is None else executed)
        record.update({f"flag.{k}": v for k, v in success_flags(info, self.task).items()})
        self.steps.append(record)
        self._obs = obs
        return obs, reward, terminated, truncated, info

    def arrays(self) -> dict[str, np.ndarray]:
        return {key: np.stack([s[key] for s in self.steps]) for key in self.steps[0]}


@dataclass
class DemoResult:
    seed: int
    planned: bool
    """The motion planner reached the goal in joint control."""
    episode: Episode | None
    """The converted, recorded episode (None when planning failed)."""
    reason: str = ""

    @property
    def success(self) -> bool:
        return self.episode is not None and self.episode.success


class ExpertDemoGenerator:
    """Owns a planning env and a recording env for one task; `generate(seed)` makes one demo."""

    def __init__(self, task: str | TaskSpec):
        self.spec = get_task(task)
        self.solve = planner_solution(self.spec)
        self.planner_env = _ActionLog(
            make_env(self.spec, obs_mode="none", control_mode=PLANNER_CONTROL_MODE,
                     max_episode_steps=PLANNER_STEP_LIMIT)
        )
        self.record_env = _StepLog(make_env(self.spec), self.spec)

    def generate(self, seed: int) -> DemoResult:
        from mani_skill.trajectory.utils.actions.conversion import from_pd_joint_pos_to_ee

        try:
            result = self.solve(self.planner_env, seed=seed, debug=False, vis=False)
        except Exception as err:  # the planners raise on unreachable grasps and the like
            return DemoResult(seed, False, None, f"planner error: {err}")
        if isinstance(result, int) and result == -1:
            return DemoResult(seed, False, None, "planner found no path")
        planned = bool(np.asarray(result[-1]["success"]).reshape(-1)[0])
        actions = self.planner_env.actions

        self.planner_env.reset(seed=seed)
        obs, _ = self.record_env.reset(seed=seed)
        planner_state = self.planner_env.unwrapped.get_state()
        if not np.allclose(planner_state.cpu().numpy(), self.record_env.unwrapped.get_state().cpu().numpy(), atol=1e-6):
            return DemoResult(seed, planned, None, "planning and recording envs reset to different states")
        initial_state = planner_state.cpu().numpy().reshape(-1).astype(np.float32)

        from_pd_joint_pos_to_ee(PLANNER_CONTROL_MODE.replace("joint_pos", "ee_delta_pose"),
                                actions, self.planner_env, self.record_env)
        arrays = self.record_env.arrays()
        arrays["initial_state"] = initial_state
        success = bool(arrays["flag.success"][-1])
        reason = "" if success else "converted episode did not succeed"
        if len(arrays["action"]) > self.spec.max_episode_steps:
            success, reason = False, f"longer than max_episode_steps ({len(arrays['action'])} steps)"
        episode = Episode(
            arrays=arrays,
            seed=seed,
            instruction=self.spec.instructions[seed % len(self.spec.instructions)],
            success=success,
            extra={"planner_steps": len(actions), "planner_success": planned},
        )
        return DemoResult(seed, planned, episode, reason)

    def close(self) -> None:
        self.planner_env.close()
        self.record_env.close()
