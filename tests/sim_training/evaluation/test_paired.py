"""stare-compare: two evaluations on the same seeds, episode by episode."""

import json

import pytest

from sim_training.evaluation.paired import CompareError, Episode, compare, main, outcomes, read_outcomes
from sim_training.evaluation.report import summarize
from sim_training.evaluation.rollout import EpisodeRecord


def _result(task: str, successes: dict[int, bool], length: int = 10) -> dict:
    """A stare-eval result, as stare-eval builds it."""
    records = [EpisodeRecord(seed, ok, length) for seed, ok in successes.items()]
    return summarize(task, records, {}).to_dict()


def _episodes(successes: dict[int, bool], length: int = 10) -> dict[int, Episode]:
    return {s: Episode(ok, length) for s, ok in successes.items()}


def test_counts_and_exact_mcnemar():
    method = _episodes({0: True, 1: True, 2: True, 3: False, 4: False, 5: True, 6: True})
    baseline = _episodes({0: True, 1: False, 2: False, 3: True, 4: False, 5: False, 6: False, 99: True})
    c = compare(method, baseline)
    assert (c.episodes, c.won, c.lost, c.both, c.neither) == (7, 4, 1, 1, 1)  # seed 99: baseline only
    assert c.p_value == pytest.approx(12 / 32)  # P(X <= 1 or X >= 4), X ~ Bin(5, 1/2)
    assert c.method_rate == pytest.approx(5 / 7) and c.baseline_rate == pytest.approx(2 / 7)


def test_one_sided_losses_and_ties():
    assert compare(_episodes({s: False for s in range(5)}),
                   _episodes({s: True for s in range(5)})).p_value == pytest.approx(2 / 32)
    same = compare(_episodes({0: True, 1: False}), _episodes({0: True, 1: False}))
    assert (same.won, same.lost, same.p_value, same.length_p_value) == (0, 0, 1.0, 1.0)


def test_lengths_are_compared_where_both_solved():
    # Seeds 0-7 solved by both, the method 3 steps sooner on each; seed 8 failed by the method (its 100 steps
    # must not count); seed 9 solved by the method only.
    method = {s: Episode(True, 20 + s) for s in range(8)} | {8: Episode(False, 100), 9: Episode(True, 5)}
    baseline = {s: Episode(True, 23 + s) for s in range(8)} | {8: Episode(True, 30), 9: Episode(False, 100)}
    c = compare(method, baseline)
    assert c.both == 8 and (c.won, c.lost) == (1, 1)
    assert c.method_length == pytest.approx(23.5) and c.baseline_length == pytest.approx(26.5)
    assert c.length_p_value == pytest.approx(2 / 2**8)  # all 8 differences of one sign: the exact extreme
    flipped = compare(baseline, method)
    assert flipped.length_p_value == pytest.approx(c.length_p_value) and flipped.method_length == 26.5


def test_errors_are_clear():
    with pytest.raises(CompareError, match="share no seed"):
        compare(_episodes({0: True}), _episodes({1: True}))
    with pytest.raises(CompareError, match="no per-episode"):
        outcomes({"task": "PickCube-v1", "episodes": 3}, "old.json")
    with pytest.raises(CompareError, match="malformed"):
        outcomes({"per_episode": [{"seed": 1}]})


def test_files_of_one_side_are_pooled(tmp_path):
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps(_result("PickCube-v1", {0: True, 1: False})))
    second.write_text(json.dumps(_result("PickCube-v1", {2: True})))
    assert read_outcomes([first, second]) == ("PickCube-v1", _episodes({0: True, 1: False, 2: True}))
    second.write_text(json.dumps(_result("PickCube-v1", {1: True})))
    with pytest.raises(CompareError, match="disagree on seed 1"):
        read_outcomes([first, second])
    second.write_text(json.dumps(_result("StackCube-v1", {2: True})))
    with pytest.raises(CompareError, match="evaluates StackCube-v1"):
        read_outcomes([first, second])
    with pytest.raises(CompareError, match="cannot read"):
        read_outcomes([tmp_path / "missing.json"])


def test_cli(tmp_path, capsys):
    sft, ipi = tmp_path / "sft.json", tmp_path / "ipi.json"
    sft.write_text(json.dumps(_result("StackCube-v1", {s: s % 4 != 0 for s in range(40)})))
    ipi.write_text(json.dumps(_result("StackCube-v1", {s: s % 8 != 0 for s in range(40)})))
    assert main(["--baseline", "SFT", str(sft), "--method", "IPI", str(ipi), "--json", str(tmp_path / "c.json")]) == 0
    assert "| IPI | 40 | 87.5% | 75.0% | 5 / 0 | 0.0625 | 10.0 / 10.0 (30 seeds) | 1 |" in capsys.readouterr().out
    written = json.loads((tmp_path / "c.json").read_text())
    assert written["methods"]["IPI"]["won"] == 5 and written["baseline"] == "SFT"

    other = tmp_path / "push.json"
    other.write_text(json.dumps(_result("PushCube-v1", {0: True})))
    assert main(["--baseline", "SFT", str(sft), "--method", "X", str(other)]) == 2
    assert "X evaluates PushCube-v1" in capsys.readouterr().err
    assert main(["--baseline", "SFT", "--method", "X", str(other)]) == 2
    assert "--baseline takes a name and at least one result file" in capsys.readouterr().err
