"""The policy interface: RGB image + instruction + proprioception -> a 7-D end-effector delta action.

    policy = VLAPolicy.load("runs/sft-pick")
    action = policy.act(image, "pick up the red cube", {"qpos": qpos, "tcp_pose": tcp_pose})

`act` accepts one observation ((H, W, 3) image) or a batch ((B, H, W, 3)); it returns de-normalised
actions of matching shape. `step` also returns the chosen tokens, their log-probability and the value;
`evaluate` gives log pi, entropy and value of given actions with gradients, for preference and RL updates.
Temperature 0 is greedy decoding; after `compile()` it runs as one compiled graph (`CompiledGreedy`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch

from stare_policy.model import checkpoint
from stare_policy.model.compiled_greedy import CompiledGreedy
from stare_policy.model.processor import ROBOT_STATE_KEYS, VLAProcessor
from stare_policy.model.vla import VLA, Temperature, VLAInputs, per_dimension


@dataclass
class PolicyStep:
    action: np.ndarray
    """(B, 7) de-normalised actions (or (7,) for a single observation)."""
    bins: torch.Tensor
    """(B, 7) chosen action-token bins."""
    log_prob: torch.Tensor
    """(B,) log pi of the chosen tokens."""
    value: torch.Tensor
    """(B,) value estimate."""
    centres: torch.Tensor | None = None
    """(B, 7) `ActionSample.centres` (None without a window or greedy prefix): `evaluate` needs them."""


class VLAPolicy:
    def __init__(self, model: VLA, processor: VLAProcessor, tasks: Sequence[dict[str, Any]] = ()):
        self.model = model
        self.processor = processor
        self.tasks = list(tasks)
        self.compiled: CompiledGreedy | None = None
        self._required_goals = frozenset(self.goal_inputs())
        """Goal inputs that every trained task states: never zero-filled (computed once, off the act path)."""

    def compile(self) -> None:
        """Greedy actions from now on through `torch.compile` (the first action of each batch size and
        prompt length compiles: tens of seconds on a CPU). Sampled actions stay eager."""
        self.compiled = CompiledGreedy(self.model)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> "VLAPolicy":
        ckpt = checkpoint.load(path, device)
        return cls(ckpt.model, ckpt.processor, ckpt.tasks)

    def save(self, path: str | Path, **extra: Any) -> None:
        with checkpoint.atomic_directory(path) as tmp:
            checkpoint.save(tmp, self.model, self.processor, self.tasks, **extra)

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def default_instruction(self, env_id: str | None = None) -> str:
        """The canonical instruction of a task the policy was trained for (the first one by default)."""
        for task in self.tasks:
            if env_id is None or task.get("env_id") == env_id:
                return task["instructions"][0]
        raise KeyError(f"the policy was not trained for task {env_id!r}")

    def goal_inputs(self, env_id: str | None = None) -> tuple[str, ...]:
        """The goal inputs the policy must be given on `env_id`: those its task states (PickCube's goal
        position). Without a known task: those that every task it was trained for states."""
        keys = [k for k in self.processor.config.proprio_keys if k not in ROBOT_STATE_KEYS]
        tasks = [t for t in self.tasks if t.get("env_id") == env_id] or self.tasks
        return tuple(k for k in keys if all(k in t.get("goal_inputs", ()) for t in tasks))

    def with_absent_goals(self, proprio: Any) -> Any:
        """`proprio` with zeros for the goal inputs that a task of this policy's training lacked (another
        task's goal position, in a multi-task checkpoint or one fine-tuned from another task's): SFT saw
        zeros there (`sim_training.train.frames`), so every caller gets them here, in the one input path.
        Robot state and the goals that every trained task states stay required (an error if absent)."""
        if not isinstance(proprio, Mapping) or not proprio:
            return proprio
        config, required = self.processor.config, self._required_goals
        absent = [(k, d) for k, d in zip(config.proprio_keys, config.proprio_dims)
                  if k not in proprio and k not in ROBOT_STATE_KEYS and k not in required]
        if not absent:
            return proprio
        lead = np.shape(next(iter(proprio.values())))[:-1]  # (B,) for a batch, () for one observation
        return {**proprio, **{k: np.zeros((*lead, d), np.float32) for k, d in absent}}

    def inputs(self, image: Any, instruction: str | Sequence[str], proprio: Any = None) -> VLAInputs:
        return self.processor(image, instruction, self.with_absent_goals(proprio)).to(self.device)

    @torch.inference_mode()
    def step(
        self,
        image: Any,
        instruction: str | Sequence[str],
        proprio: Any = None,
        *,
        temperature: Temperature = 0.0,
        generator: torch.Generator | None = None,
        window: int | None = None,
        greedy_prefix: bool = False,
    ) -> PolicyStep:
        """One action per observation; `temperature` is one value or one per action dimension (0: greedy);
        sampled tokens stay within `window` bins of the greedy ones (None: anywhere) and, with
        `greedy_prefix`, each is drawn given the greedy tokens before it (`VLA.sample`)."""
        greedy = not any(per_dimension(temperature, self.model.config.action_dim))  # raises on bad values
        single = getattr(image, "ndim", 0) == 3
        inputs = self.inputs(image, instruction, proprio)
        if greedy and self.compiled is not None:
            sample = self.compiled(inputs)
        else:
            sample = self.model.sample(inputs, temperature, generator, window, greedy_prefix)
        action = self.processor.actions(sample.bins)
        return PolicyStep(action[0] if single else action, sample.bins, sample.log_prob, sample.value, sample.centres)

    def act(self, image: Any, instruction: str | Sequence[str], proprio: Any = None, *, temperature: Temperature = 0.0,
            generator: torch.Generator | None = None, window: int | None = None,
            greedy_prefix: bool = False) -> np.ndarray:
        return self.step(image, instruction, proprio, temperature=temperature, generator=generator,
                         window=window, greedy_prefix=greedy_prefix).action

    def evaluate(
        self, inputs: VLAInputs, actions: np.ndarray | torch.Tensor, temperature: Temperature = 1.0,
        window: int | None = None, centres: torch.Tensor | None = None, greedy_prefix: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """log pi (B,), entropy (B,), value (B,) of actions (B, 7); float actions are tokenised first.
        `window`, `centres` and `greedy_prefix`: those of the sampling (`step`), so that log pi is taken
        where it sampled."""
        bins = actions if isinstance(actions, torch.Tensor) and not actions.is_floating_point() \
            else self.processor.bins(np.asarray(actions))
        centres = None if centres is None else centres.to(self.device)
        return self.model.evaluate_actions(inputs, bins.to(self.device).clone(), temperature, window, centres,
                                           greedy_prefix)
