"""`stare-ipi`'s configuration: the task, where SFT comes from, and one section per phase whose keys are
those of the phase's own command (`stare-train sft|tpo|ppo --config`), checked before anything runs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sim_training.evaluation.evaluate import EVAL_SEED_START
from sim_training.preference.cli import ROLLOUT_SEED_START
from stare_policy.typed_config import ConfigError, from_dict


@dataclass(frozen=True)
class RolloutsSection:
    initial_states: int = 32
    """N initial states (env seeds from `seed_start`) for the preference rollouts."""
    per_state: int = 4
    """K rollouts of the SFT policy from each initial state (pairs form among them)."""
    temperature: float = 1.0
    """Sampling temperature of the rollouts (TPO/StA-TPO take log pi at their own `temperature`)."""
    gripper_temperature: float | None = None
    """The gripper token's (None: `temperature`; 0: greedy); give `tpo.gripper_temperature` the same."""
    window: int | None = None
    """Sample each token within this many bins of the greedy one (None: anywhere). TPO's log-ratios stay on
    the whole distribution: the reference's and the policy's windows could differ."""
    greedy_prefix: bool = False
    """Sample each token given the greedy tokens before it (`VLA.sample`); TPO's log-ratios stay those of the
    actions taken, token after token."""
    seed_start: int = ROLLOUT_SEED_START
    max_steps: int | None = None
    """Step limit of a rollout (default: the task's)."""
    workers: int = 1
    """Simulator processes for the rollouts (> 1: batched policy; reproducible for the same count)."""


@dataclass(frozen=True)
class EvalSection:
    episodes: int = 100
    """Greedy episodes per evaluation, on seeds never used for demos, rollouts or PPO."""
    seed_start: int = EVAL_SEED_START
    workers: int = 2
    compile: bool = False
    """Evaluate through the compiled greedy decoder (faster; compiles once per checkpoint)."""


@dataclass(frozen=True)
class IPIConfig:
    task: str = ""
    """ManiSkill3 task id (`--task` sets it)."""
    demos: tuple[str, ...] = ()
    """Demonstration datasets for SFT (`--demos` sets them)."""
    sft_checkpoint: str | None = None
    """Start from this SFT checkpoint instead of training one on `demos` (`--sft-checkpoint`)."""
    sft: dict[str, Any] = field(default_factory=dict)
    """`stare-train sft` config (SFTConfig keys)."""
    rollouts: RolloutsSection = RolloutsSection()
    tpo: dict[str, Any] = field(default_factory=dict)
    """`stare-train tpo|sta-tpo` config (TPOConfig keys); both preference methods get the same one, with the
    rollouts' temperatures."""
    ppo: dict[str, Any] = field(default_factory=dict)
    """`stare-train ppo|sta-ppo` config (PPOConfig keys); both interaction methods get the same one."""
    eval: EvalSection = EvalSection()


def check(cfg: IPIConfig) -> None:
    """Every problem a run would meet late, raised now: a missing task or SFT source, a section key that
    its phase's command would refuse, a budget that is not positive."""
    from sim_training.tasks import UnknownTaskError, get_task
    from sim_training.train.ppo import PPOConfig, PPOError, check_config as check_ppo
    from sim_training.train.sft import SFTConfig
    from sim_training.train.tpo import TPOConfig

    if not cfg.task:
        raise ConfigError("task: give --task or `task:` in the config")
    try:
        get_task(cfg.task)
    except UnknownTaskError as err:
        raise ConfigError(f"task: {err}") from None
    if not cfg.demos and not cfg.sft_checkpoint:
        raise ConfigError("SFT needs `demos` (--demos DIR...) or an `sft_checkpoint` (--sft-checkpoint DIR)")
    if cfg.sft_checkpoint and not Path(cfg.sft_checkpoint).is_dir():
        raise ConfigError(f"sft_checkpoint: {cfg.sft_checkpoint} is not a checkpoint directory")
    if cfg.demos and not cfg.sft_checkpoint:
        from sim_training.data import Dataset, DatasetError

        try:
            held = {str(d): Dataset(d).spec.env_id for d in cfg.demos}
        except DatasetError as err:
            raise ConfigError(f"demos: {err}") from None
        if cfg.task not in held.values():
            raise ConfigError(f"demos: none holds {cfg.task} ({', '.join(f'{d}: {t}' for d, t in held.items())})")
    for name, cls in (("sft", SFTConfig), ("tpo", TPOConfig), ("ppo", PPOConfig)):
        from_dict(cls, getattr(cfg, name), prefix=f"{name}.")
    try:
        check_ppo(from_dict(PPOConfig, cfg.ppo))
    except PPOError as err:
        raise ConfigError(f"ppo: {err}") from None
    for key in ("temperature", "gripper_temperature"):  # log pi must be taken where the rollouts sampled
        if key in cfg.tpo and cfg.tpo[key] != getattr(cfg.rollouts, key):
            raise ConfigError(f"tpo.{key} ({cfg.tpo[key]}) must equal rollouts.{key} ({getattr(cfg.rollouts, key)}); "
                              "leave it out and IPI passes the rollouts' value")
    for key in ("initial_states", "per_state"):
        if getattr(cfg.rollouts, key) < 1:
            raise ConfigError(f"rollouts.{key} must be >= 1")
    if cfg.rollouts.temperature <= 0:
        raise ConfigError("rollouts.temperature must be > 0 (pairs need different rollouts)")
    if cfg.rollouts.workers < 1:
        raise ConfigError("rollouts.workers must be >= 1")
    if cfg.rollouts.window is not None and cfg.rollouts.window < 0:
        raise ConfigError(f"rollouts.window must be >= 0 bins or null, got {cfg.rollouts.window}")
    if cfg.eval.episodes < 1 or cfg.eval.workers < 1:
        raise ConfigError("eval.episodes and eval.workers must be >= 1")
