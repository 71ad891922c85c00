"""Stage costs, stage-offset potentials and episode summaries on real demos."""

import numpy as np
import pytest

from stare_policy.stages import CostConfig, potential, segment_privileged, shaping, stage_spec, summarize

TASKS = ["PickCube-v1", "StackCube-v1", "PushCube-v1", "LiftPegUpright-v1"]


@pytest.mark.parametrize("task", TASKS)
def test_potential_stays_in_its_stage_band_and_never_drops_on_entering_a_stage(task, real_demos):
    spec = stage_spec(task)
    for episode in real_demos(task):
        seg, m = segment_privileged(episode.arrays, spec)
        phi = potential(seg.labels, m, spec)
        assert np.all(phi >= seg.labels) and np.all(phi <= seg.labels + 1)
        for t in seg.entries()[1:]:
            assert phi[t] >= phi[t - 1]
        assert phi[-1] > len(spec) - 1  # a successful demo ends inside the last band


def test_discounted_shaping_telescopes(real_demos):
    spec = stage_spec("StackCube-v1")
    seg, m = segment_privileged(real_demos("StackCube-v1").episode(0).arrays, spec)
    phi = potential(seg.labels, m, spec)
    gamma = 0.97
    terms = shaping(phi[:-1], phi[1:], gamma)
    discounted = np.sum(gamma ** np.arange(len(terms)) * terms)
    assert discounted == pytest.approx(gamma ** len(terms) * phi[-1] - phi[0], abs=1e-9)


def test_summary_of_a_successful_demo(real_demos):
    spec = stage_spec("PickCube-v1")
    seg, m = segment_privileged(real_demos("PickCube-v1").episode(0).arrays, spec)
    summary = summarize(seg, m, spec, success=True)
    assert summary.completed == len(spec) and summary.furthest == "Settle"
    assert all(s.entered and s.completed for s in summary.stages)
    reach = np.flatnonzero(seg.labels == 0)
    assert summary.stages[0].cost == pytest.approx(m.reach[reach].mean())  # the paper's Reach cost
    assert summary.stages[0].steps == len(reach)
    assert np.all(summary.costs < 1.0)
    assert summary.to_dict()["stages"][1]["name"] == "Grasp"


def test_summary_of_an_episode_cut_short_charges_the_unfinished_stages(real_demos):
    spec = stage_spec("PickCube-v1")
    arrays = real_demos("PickCube-v1").episode(0).arrays
    full, _ = segment_privileged(arrays, spec)
    cut = full.entries()[spec.index("Transport")] - 3  # still grasping
    seg, m = segment_privileged({k: v[:cut] for k, v in arrays.items() if k != "initial_state"}, spec)
    config = CostConfig(unreached=7.0, incomplete=0.5)
    summary = summarize(seg, m, spec, success=False, config=config)
    assert summary.furthest == "Grasp" and summary.completed == 1
    assert [s.entered for s in summary.stages] == [True, True, False, False]
    assert summary.costs[2] == summary.costs[3] == 7.0
    grasp = np.flatnonzero(seg.labels == 1)
    assert summary.costs[1] == pytest.approx(1.0 - m.grasped[grasp].mean() + 0.5)
