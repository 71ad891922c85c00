"""`stare-rollouts` with a real tiny checkpoint in the real simulator: K sampled rollouts per initial state,
written as a dataset that StARe labels and the pair builder reads."""

import json

import numpy as np

from sim_training.data import Dataset
from sim_training.preference.cli import main
from sim_training.preference.pairs import LabelledRollout, stage_pairs
from stare_policy.stages import segment_privileged, stage_spec, summarize


def test_rollouts_are_written_grouped_by_initial_state_and_pairable(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "rollouts"
    assert main(["--checkpoint", str(tiny_checkpoint), "--task", "PickCube-v1", "--initial-states", "2",
                 "--per-state", "2", "--temperature", "1.0", "--max-steps", "6", "--out", str(out), "--quiet"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["rollouts"] == 4
    dataset = Dataset(out)
    episodes = [dataset.episode(i) for i in range(len(dataset))]
    assert [e.seed for e in episodes] == [2_000_000, 2_000_000, 2_000_001, 2_000_001]
    assert all(len(e) == 6 or e.success for e in episodes)
    assert "priv.cube_pose" in episodes[0].arrays and "image" in episodes[0].arrays
    # two samples from one start differ (temperature 1), and both start from the same state
    a, b = episodes[0].arrays, episodes[1].arrays
    assert not np.allclose(a["action"], b["action"])
    np.testing.assert_allclose(a["priv.cube_pose"][0], b["priv.cube_pose"][0], atol=1e-6)
    stages = stage_spec("PickCube-v1")
    labelled = []
    for e in episodes:
        seg, m = segment_privileged(e.arrays, stages)
        labelled.append(LabelledRollout(e.seed, seg, summarize(seg, m, stages, e.success), e.success))
    for p in stage_pairs(labelled):  # whatever pairs six random steps make, they stay within a start
        assert labelled[p.winner].start == labelled[p.loser].start


def test_refuses_an_existing_output_and_bad_counts(tiny_checkpoint, tmp_path):
    common = ["--checkpoint", str(tiny_checkpoint), "--task", "PickCube-v1", "--out", str(tmp_path)]
    assert main([*common, "--initial-states", "1", "--per-state", "1"]) == 1  # tmp_path exists
    assert main([*common, "--initial-states", "0", "--per-state", "1", "--overwrite"]) == 2
    assert main([*common, "--initial-states", "1", "--per-state", "1", "--window", "-1", "--overwrite"]) == 2


def test_workers_run_the_same_jobs_as_one_env_batched(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "vector"
    assert main(["--checkpoint", str(tiny_checkpoint), "--task", "PickCube-v1", "--initial-states", "2",
                 "--per-state", "2", "--max-steps", "5", "--workers", "2", "--greedy-prefix", "--window", "3",
                 "--out", str(out), "--quiet"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["rollouts"] == 4
    dataset = Dataset(out)
    episodes = [dataset.episode(i) for i in range(len(dataset))]
    assert sorted((e.seed, e.extra["rollout"]) for e in episodes) == [
        (2_000_000, 0), (2_000_000, 1), (2_000_001, 0), (2_000_001, 1)]
    for e in episodes:
        assert len(e) == 5 or e.success
        assert (e.extra["window"], e.extra["greedy_prefix"]) == (3, True)
        assert len(e.arrays["priv.cube_pose"]) == len(e) and e.arrays["initial_state"].ndim == 1
    # rollouts of one start begin in the same state; the two starts differ
    by_seed = {}
    for e in episodes:
        by_seed.setdefault(e.seed, []).append(e.arrays["priv.cube_pose"][0])
    for poses in by_seed.values():
        np.testing.assert_allclose(poses[0], poses[1], atol=1e-6)
    assert not np.allclose(by_seed[2_000_000][0], by_seed[2_000_001][0])
