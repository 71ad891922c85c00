"""Which rollouts are compared: trajectory pairs for TPO and stage pairs for StA-TPO.

In simulation both pair only rollouts that started from the same initial state (GRAPE does): whatever
else differs between two rollouts, the policy's choices made it. Robot episodes never share a start, so
`PairingRule(group_by="instruction")` pairs episodes given the same instruction (one task per call),
optionally only those whose initial configurations (tool position, and object positions where recorded)
lie within `max_initial_distance_m` of each other. The inputs are labelled rollouts, whatever labelled
them (the privileged separator in simulation, the proprioceptive one on robot bags), so the same code
builds pairs for simulated rollouts and for recorded episodes.

- TPO: a rollout that succeeded is preferred to one from the same start that failed. Near-greedy sampling
  leaves few failures; `PairingRule(success_step_gap=N)` then also prefers, of two successes, the one that
  succeeded N or more steps sooner (rollouts end at success, so a rollout's length is its time to success).
- StA-TPO, stage k: only rollouts that both completed stage k-1 compete ("progressive consistency"; every
  rollout competes on the first stage), the winner has the lower stage cost l_k, ties are broken by which
  one completed the stage, and the log-ratios are later restricted to the steps each spent in stage k.
  `PairingRule` can widen a tie to costs within a tolerance, and leave out pairs of two rollouts that both
  failed the stage.
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from typing import Hashable, Sequence

import numpy as np

from stare_policy.stages import EpisodeSummary, Segmentation


@dataclass(frozen=True)
class LabelledRollout:
    start: Hashable
    """The initial state it started from (a seed, or an id of a recorded start)."""
    segmentation: Segmentation
    summary: EpisodeSummary
    success: bool
    instruction: str = ""
    initial: np.ndarray | None = None
    """Initial configuration for the similarity restriction: positions (m), e.g. the tool's, then objects'."""


@dataclass(frozen=True)
class PairingRule:
    group_by: str = "start"
    """'start': only rollouts from one initial state compete (simulation); 'instruction': episodes given the
    same instruction (robot bags, where no two episodes share a start)."""
    max_initial_distance_m: float | None = None
    """With 'instruction': pair only episodes whose `initial` vectors lie within this Euclidean distance
    (None: any two). Ignored for 'start'."""
    tie_tolerance: float = 0.0
    """Stage pairs: two stage costs closer than this count as a tie, which only stage completion breaks (else
    no pair). Costs a few millimetres apart say nothing a policy can learn; 0: only equal costs tie."""
    pair_failures: bool = True
    """Stage pairs: whether two rollouts that both failed stage k (neither completed it) form a stage-k pair.
    False: one of the two must have completed stage k, so a failure is never the preferred side."""
    success_step_gap: int | None = None
    """Trajectory pairs: of two successful rollouts, the one that succeeded at least this many steps sooner
    is preferred (None: successes are never compared, only success over failure)."""

    def __post_init__(self):
        if self.group_by not in ("start", "instruction"):
            raise ValueError(f"group_by must be 'start' or 'instruction', got {self.group_by!r}")
        if self.max_initial_distance_m is not None and self.max_initial_distance_m < 0:
            raise ValueError("max_initial_distance_m must be >= 0 (or None)")
        if not self.tie_tolerance >= 0:
            raise ValueError(f"tie_tolerance must be >= 0, got {self.tie_tolerance}")
        if self.success_step_gap is not None and self.success_step_gap < 1:
            raise ValueError(f"success_step_gap must be >= 1 step (or None), got {self.success_step_gap}")

    def comparable(self, a: LabelledRollout, b: LabelledRollout) -> bool:
        if self.group_by == "start" or self.max_initial_distance_m is None:
            return True
        if a.initial is None or b.initial is None or a.initial.shape != b.initial.shape:
            return False
        return float(np.linalg.norm(a.initial - b.initial)) <= self.max_initial_distance_m


@dataclass(frozen=True)
class TrajectoryPair:
    winner: int
    loser: int
    """Indices into the rollout list."""


@dataclass(frozen=True)
class StagePair:
    stage: int
    winner: int
    loser: int
    winner_steps: np.ndarray
    """Timesteps of the winner in stage `stage` (its log-ratio is restricted to them)."""
    loser_steps: np.ndarray
    winner_cost: float
    loser_cost: float


def _groups(rollouts: Sequence[LabelledRollout], rule: PairingRule) -> dict[Hashable, list[int]]:
    groups: dict[Hashable, list[int]] = {}
    for i, rollout in enumerate(rollouts):
        groups.setdefault(rollout.start if rule.group_by == "start" else rollout.instruction, []).append(i)
    return groups


def trajectory_pairs(rollouts: Sequence[LabelledRollout], rule: PairingRule = PairingRule()) -> list[TrajectoryPair]:
    """Every comparable (success, failure) pair of rollouts in one group and, with `rule.success_step_gap`,
    every comparable pair of successes whose lengths differ by at least that many steps (shorter wins)."""
    pairs = []
    for members in _groups(rollouts, rule).values():
        wins = [i for i in members if rollouts[i].success]
        losses = [i for i in members if not rollouts[i].success]
        pairs += [TrajectoryPair(w, l) for w in wins for l in losses if rule.comparable(rollouts[w], rollouts[l])]
        if rule.success_step_gap is None:
            continue
        for a, b in combinations(wins, 2):
            length_a, length_b = len(rollouts[a].segmentation), len(rollouts[b].segmentation)
            if abs(length_a - length_b) >= rule.success_step_gap and rule.comparable(rollouts[a], rollouts[b]):
                pairs.append(TrajectoryPair(a, b) if length_a < length_b else TrajectoryPair(b, a))
    return pairs


def _completed(rollout: LabelledRollout, k: int) -> bool:
    return k < 0 or rollout.summary.stages[k].completed


def stage_pairs(rollouts: Sequence[LabelledRollout], stages: Sequence[int] | None = None,
                rule: PairingRule = PairingRule()) -> list[StagePair]:
    """Stage-level pairs for the given stage indices (default: all), by the rules of the module docstring."""
    if not rollouts:
        return []
    n_stages = len(rollouts[0].summary.stages)
    pairs = []
    for members in _groups(rollouts, rule).values():
        for k in range(n_stages) if stages is None else stages:
            eligible = [i for i in members if _completed(rollouts[i], k - 1)
                        and np.any(rollouts[i].segmentation.labels == k)]
            for a, b in combinations(eligible, 2):
                if not rule.comparable(rollouts[a], rollouts[b]):
                    continue
                sa, sb = rollouts[a].summary.stages[k], rollouts[b].summary.stages[k]
                if not (rule.pair_failures or sa.completed or sb.completed):
                    continue
                if abs(sa.cost - sb.cost) > rule.tie_tolerance:
                    winner, loser = (a, b) if sa.cost < sb.cost else (b, a)
                elif sa.completed != sb.completed:
                    winner, loser = (a, b) if sa.completed else (b, a)
                else:
                    continue  # nothing to prefer
                pairs.append(StagePair(
                    k, winner, loser,
                    np.flatnonzero(rollouts[winner].segmentation.labels == k),
                    np.flatnonzero(rollouts[loser].segmentation.labels == k),
                    rollouts[winner].summary.stages[k].cost, rollouts[loser].summary.stages[k].cost))
    return pairs
