"""Pair building on real rollouts: noisy replays of real PickCube demos in the simulator, several per initial
state, labelled by the privileged separator."""

import numpy as np
import pytest

from sim_training.preference.pairs import LabelledRollout, PairingRule, stage_pairs, trajectory_pairs
from sim_training.stages.rollouts import noisy_replays
from stare_policy.stages import segment_privileged, stage_spec, summarize

ROLLOUTS_PER_START = 4


@pytest.fixture(scope="module")
def rollouts(real_demos):
    dataset = real_demos("PickCube-v1")
    demos = [dataset.episode(i) for i in range(len(dataset))]
    stages = stage_spec("PickCube-v1")
    out = []
    for draw in range(ROLLOUTS_PER_START):  # noise from 0 (the demo itself) up to enough to fail in any stage
        for episode in noisy_replays(dataset.spec, demos, sigma=0.05 * draw, seed=draw):
            segmentation, measures = segment_privileged(episode.arrays, stages)
            out.append(LabelledRollout(episode.seed, segmentation, summarize(segmentation, measures, stages,
                                                                           episode.success), episode.success))
    return out


def test_trajectory_pairs_prefer_success_from_the_same_start(rollouts):
    pairs = trajectory_pairs(rollouts)
    assert pairs, "the noisy replays should include failures beside successes"
    for p in pairs:
        assert rollouts[p.winner].success and not rollouts[p.loser].success
        assert rollouts[p.winner].start == rollouts[p.loser].start


def test_stage_pairs_follow_progressive_consistency(rollouts):
    pairs = stage_pairs(rollouts)
    assert len({p.stage for p in pairs}) >= 2, "pairs for more than one stage"
    for p in pairs:
        w, l = rollouts[p.winner], rollouts[p.loser]
        assert w.start == l.start
        if p.stage > 0:  # both completed the previous stage
            assert w.summary.stages[p.stage - 1].completed and l.summary.stages[p.stage - 1].completed
        assert p.winner_cost <= p.loser_cost
        assert p.winner_cost == w.summary.stages[p.stage].cost and p.loser_cost == l.summary.stages[p.stage].cost
        if p.winner_cost == p.loser_cost:
            assert w.summary.stages[p.stage].completed and not l.summary.stages[p.stage].completed
        assert len(p.winner_steps) and np.all(w.segmentation.labels[p.winner_steps] == p.stage)
        assert len(p.loser_steps) and np.all(l.segmentation.labels[p.loser_steps] == p.stage)
    # and the rule excludes someone: a rollout that never completed Reach is in no Grasp pair
    stuck = {i for i, r in enumerate(rollouts) if not r.summary.stages[0].completed}
    assert not any(p.stage == 1 and {p.winner, p.loser} & stuck for p in pairs)


def test_pairs_of_an_empty_set_are_empty():
    assert stage_pairs([]) == [] and trajectory_pairs([]) == []


def _key(p):
    return p.stage, p.winner, p.loser


def test_tie_tolerance_leaves_out_near_ties_unless_completion_breaks_them(rollouts):
    every = stage_pairs(rollouts)
    gaps = sorted(p.loser_cost - p.winner_cost for p in every if p.loser_cost > p.winner_cost)
    tolerance = gaps[len(gaps) // 2]  # the median gap: about half the cost-decided pairs become ties
    kept = stage_pairs(rollouts, rule=PairingRule(tie_tolerance=tolerance))
    assert 0 < len(kept) < len(every)
    assert {_key(p) for p in kept} <= {_key(p) for p in every}
    for p in kept:
        w, l = rollouts[p.winner].summary.stages[p.stage], rollouts[p.loser].summary.stages[p.stage]
        assert p.loser_cost - p.winner_cost > tolerance or (w.completed and not l.completed)
    only_completion = stage_pairs(rollouts, rule=PairingRule(tie_tolerance=1e9))
    for p in only_completion:
        assert rollouts[p.winner].summary.stages[p.stage].completed
        assert not rollouts[p.loser].summary.stages[p.stage].completed


def test_pair_failures_false_drops_pairs_of_two_failures_only(rollouts):
    every = stage_pairs(rollouts)

    def failed_both(p):
        return not (rollouts[p.winner].summary.stages[p.stage].completed
                    or rollouts[p.loser].summary.stages[p.stage].completed)

    assert any(failed_both(p) for p in every), "the noisy replays should give pairs of two failures"
    kept = stage_pairs(rollouts, rule=PairingRule(pair_failures=False))
    assert {_key(p) for p in kept} == {_key(p) for p in every if not failed_both(p)}


def test_pairing_rule_refuses_a_negative_tolerance():
    with pytest.raises(ValueError, match="tie_tolerance"):
        PairingRule(tie_tolerance=-0.01)


def test_success_step_gap_prefers_the_sooner_of_two_successes(rollouts):
    """Replays of one demo all take its length, so the successes here are given other lengths (their
    segmentations cut short, as rollouts that ended at success sooner would be)."""
    import dataclasses

    successes = [r for r in rollouts if r.success]
    starts = sorted({r.start for r in successes}, key=str)
    assert len(starts) >= 2
    varied, seen = [], {}
    for r in successes:
        seen[r.start] = seen.get(r.start, -1) + 1
        cut = 2 * seen[r.start]  # per start: 0, 2, 4, ... steps sooner
        seg = dataclasses.replace(r.segmentation, labels=r.segmentation.labels[:len(r.segmentation.labels) - cut])
        varied.append(dataclasses.replace(r, segmentation=seg))
    assert trajectory_pairs(varied) == [], "successes only: no success/failure pair"
    for gap in (1, 2):
        pairs = trajectory_pairs(varied, PairingRule(success_step_gap=gap))
        assert pairs
        for p in pairs:
            w, l = varied[p.winner], varied[p.loser]
            assert w.start == l.start and len(l.segmentation) - len(w.segmentation) >= gap
        expected = sum(1 for i, a in enumerate(varied) for b in varied[i + 1:]
                       if a.start == b.start and abs(len(a.segmentation) - len(b.segmentation)) >= gap)
        assert len(pairs) == expected
    assert trajectory_pairs(varied, PairingRule(success_step_gap=1000)) == []
    # success over failure still comes first, and stays
    mixed = trajectory_pairs(rollouts, PairingRule(success_step_gap=1))
    assert {(p.winner, p.loser) for p in trajectory_pairs(rollouts)} <= {(p.winner, p.loser) for p in mixed}
    with pytest.raises(ValueError, match="success_step_gap"):
        PairingRule(success_step_gap=0)
