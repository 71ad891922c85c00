"""The evaluation's hook into StARe: per-stage completion of closed-loop episodes.

Where `stare_policy.stages` has a stage spec for the task, evaluation envs are built by
`make_shaped_vector_env`, whose online privileged separator reports each step's stage in `info["stage"]`
(the shaped reward itself is ignored here). Stage k counts as completed by an episode that went on to
enter stage k+1, and every stage by an episode that succeeded. Tasks without a stage spec report {}.
"""

from __future__ import annotations

from typing import Sequence

import gymnasium as gym

from sim_training.envs import make_vector_env
from sim_training.evaluation.rollout import EpisodeRecord
from sim_training.tasks import TaskSpec


def stage_names(spec: TaskSpec) -> tuple[str, ...] | None:
    """The task's stage names, or None when StARe does not cover it."""
    try:
        from stare_policy.stages import UnknownStageSpecError, stage_spec
    except ImportError:
        return None
    try:
        return stage_spec(spec.env_id).names
    except UnknownStageSpecError:
        return None


def make_eval_env(
    spec: TaskSpec, num_envs: int, sim_backend: str = "cpu"
) -> tuple[gym.vector.VectorEnv, tuple[str, ...] | None]:
    """Vector env for evaluation, with online stage labels when the task has stages."""
    names = stage_names(spec)
    if names is None:
        return make_vector_env(spec, num_envs, sim_backend=sim_backend), None
    from sim_training.envs.shaped_reward import make_shaped_vector_env

    return make_shaped_vector_env(spec, num_envs, sim_backend=sim_backend), names


def stage_completion(names: Sequence[str] | None, records: Sequence[EpisodeRecord]) -> dict[str, float]:
    """Fraction of episodes that completed each stage ({} without stages)."""
    if not names or not records:
        return {}
    out = {}
    for k, name in enumerate(names):
        # A success completes every stage: an episode ends on its first successful step, which may come
        # before the separator has seen the later stages begin (a push that succeeds while still in Reach).
        done = [rec.success or (rec.furthest_stage or 0) > k for rec in records]
        out[name] = sum(done) / len(records)
    return out
