"""Recorded episodes -> StARe labels, stage costs and preference pairs, as a robot's data allows.

Stages come from the proprioceptive separator (joints + gripper command: what every bag has); costs from
`stare_policy.stages.robot_costs` against a reference of demonstrations segmented the same way. An
episode whose arrays carry object poses (`priv.<object>_pose`, e.g. from a perception node, or a
simulated robot) is labelled by the privileged separator with the full costs instead. Pairs follow
`PairingRule`: episodes of one instruction, optionally of similar initial configurations.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from sim_training.data import Episode
from sim_training.preference.pairs import LabelledRollout, PairingRule, stage_pairs, trajectory_pairs
from sim_training.stages.evaluate import has_privileged
from sim_training.tasks import TaskSpec
from stare_policy.stages import segment_privileged, segment_proprio_batch, summarize
from stare_policy.stages.robot_costs import RobotCostConfig, StageReference, robot_summary

KNOWN_OUTCOMES = ("success", "failure", "timeout")
"""Operator / bridge outcome labels that say whether the episode succeeded; others ('unknown', 'killed',
'aborted') do not, so such an episode completes no last stage and takes no part in trajectory pairs."""


def outcome_known(episode: Episode) -> bool:
    return episode.extra.get("outcome", "success" if episode.success else "unknown") in KNOWN_OUTCOMES


def proprio_segmentations(episodes: Sequence[Episode], spec: TaskSpec):
    return segment_proprio_batch(spec.stages, [e.arrays["qpos"] for e in episodes],
                                 [e.arrays["action"][:, -1] for e in episodes], rate_hz=spec.control_freq)


def stage_reference(reference: Sequence[Episode], spec: TaskSpec) -> StageReference:
    """Median per-stage steps, path and jerk of reference episodes (demonstrations, or successes)."""
    segs = proprio_segmentations(reference, spec)
    return StageReference.from_episodes(segs, [e.arrays["tcp_pose"][:, :3] for e in reference], len(spec.stages))


def initial_configuration(episode: Episode, spec: TaskSpec) -> np.ndarray:
    """Tool position at the first step, then the task object's position where it was recorded (m)."""
    parts = [episode.arrays["tcp_pose"][0, :3]]
    key = f"priv.{spec.stages.object}_pose"
    if key in episode.arrays:
        parts.append(episode.arrays[key][0, :3])
    return np.concatenate(parts).astype(np.float64)


@dataclass
class Labelled:
    rollouts: list[LabelledRollout]
    episodes: list[Episode]
    skipped: list[dict] = field(default_factory=list)
    """{"episode", "reason"} of episodes left out of pairing."""
    privileged: int = 0
    """How many were labelled from object poses (full costs)."""


def label(episodes: Sequence[Episode], spec: TaskSpec, reference: StageReference,
          costs: RobotCostConfig = RobotCostConfig(), *, need_outcome: bool = False) -> Labelled:
    """LabelledRollouts for pairing (start = the episode's own id: robot episodes share no start)."""
    out = Labelled([], [])
    kept = []
    for e in episodes:
        name = e.extra.get("episode_id") or e.extra.get("bag") or f"seed {e.seed}"
        if e.extra.get("task", spec.env_id) != spec.env_id:
            out.skipped.append({"episode": name, "reason": f"task {e.extra.get('task')}, not {spec.env_id}"})
        elif len(e) < 2:
            out.skipped.append({"episode": name, "reason": "fewer than 2 control ticks"})
        elif need_outcome and not outcome_known(e):
            out.skipped.append({"episode": name, "reason": f"no outcome label ({e.extra.get('outcome')})"})
        else:
            kept.append(e)
    proprio = proprio_segmentations(kept, spec) if kept else []
    for e, seg in zip(kept, proprio):
        success = e.success if outcome_known(e) else None
        if has_privileged(e.arrays, spec.stages):
            seg, measures = segment_privileged(e.arrays, spec.stages)
            summary = summarize(seg, measures, spec.stages, success)
            out.privileged += 1
        else:
            summary = robot_summary(seg, e.arrays["tcp_pose"][:, :3], spec.stages, success, reference, costs)
        start = e.extra.get("episode_id") or e.extra.get("bag") or id(e)
        out.rollouts.append(LabelledRollout(start, seg, summary, bool(e.success), e.instruction,
                                            initial_configuration(e, spec)))
        out.episodes.append(e)
    return out


def pairs_of(labelled: Labelled, rule: PairingRule, stage_aware: bool):
    """(winner Side, loser Side) pairs in TPO's form, and the number of pairs per stage name."""
    from sim_training.train.tpo import Side

    rollouts, episodes = labelled.rollouts, labelled.episodes
    if stage_aware:
        found = stage_pairs(rollouts, rule=rule)
        names = [s.name for s in rollouts[0].summary.stages] if rollouts else []
        per_stage = {name: sum(p.stage == k for p in found) for k, name in enumerate(names)}
        return [(Side(p.winner, p.winner_steps, p.winner_cost), Side(p.loser, p.loser_steps, p.loser_cost))
                for p in found], per_stage
    found = trajectory_pairs(rollouts, rule)
    return [(Side(p.winner, np.arange(len(episodes[p.winner]))), Side(p.loser, np.arange(len(episodes[p.loser]))))
            for p in found], {"trajectory": len(found)}
