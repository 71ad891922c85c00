"""`stare-train tpo` / `sta-tpo` end to end on real data: real planner demos (successes) and real rollouts of a
real tiny checkpoint from the same initial states (failures), labelled by StARe; resume after a stop."""

import json
import math

import pytest

from data_parallel import torchrun, trainer_state, weight_gap
from sim_training.preference.cli import main as rollouts_main
from sim_training.train.cli import main as train_main
from tiny_checkpoint import tiny_checkpoint  # noqa: F401  (a fixture)


@pytest.fixture(scope="module")
def data(real_demos, tiny_checkpoint, tmp_path_factory):
    demos = real_demos("PickCube-v1")
    seeds = sorted({demos.episode(i).seed for i in range(len(demos))})
    out = tmp_path_factory.mktemp("tpo") / "rollouts"
    assert rollouts_main(["--checkpoint", str(tiny_checkpoint), "--task", "PickCube-v1", "--initial-states", "1",
                          "--seed-start", str(seeds[0]), "--per-state", "3", "--max-steps", "8", "--out", str(out),
                          "--quiet"]) == 0
    return demos.root, out


def _progress(out):
    return [json.loads(line) for line in (out / "progress.jsonl").read_text().splitlines()]


def test_tpo_starts_at_log_2_trains_and_resumes(data, tiny_checkpoint, tmp_path):
    out = tmp_path / "tpo"
    common = ["tpo", "--checkpoint", str(tiny_checkpoint), "--data", *map(str, data), "--out", str(out), "--quiet"]
    assert train_main([*common, "steps=2", "steps_per_side=4", "save_every=1", "lr=1e-3"]) == 0
    rows = _progress(out)
    assert [r["step"] for r in rows] == [1, 2]
    assert abs(rows[0]["loss"] - math.log(2)) < 1e-4, "the policy starts as its reference"
    assert rows[1]["loss"] < rows[0]["loss"] and rows[1]["margin"] > 0
    # resuming continues from the saved step
    assert train_main([*common, "steps=3", "steps_per_side=4", "save_every=1", "lr=1e-3"]) == 0
    assert [r["step"] for r in _progress(out)] == [1, 2, 3]
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["algorithm"] == "tpo" and state["pairs"] >= 3


def test_sta_tpo_pairs_stages_and_weighs_their_costs(data, tiny_checkpoint, tmp_path):
    out = tmp_path / "sta"
    assert train_main(["sta-tpo", "--checkpoint", str(tiny_checkpoint), "--data", *map(str, data), "--out", str(out),
                       "--quiet", "steps=1", "steps_per_side=4", "cost_weight=1.0"]) == 0
    first = _progress(out)[0]
    # the policy equals its reference, so the loss is -log sigmoid(beta * lambda * (l- - l+)) <= log 2
    assert first["loss"] <= math.log(2) + 1e-6
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["algorithm"] == "sta-tpo" and state["pairs"] > 0


def test_sta_tpo_pairing_rules_come_from_the_config(data, tiny_checkpoint, tmp_path, capsys):
    # The demos complete Reach and the 8-step rollouts do not: leaving out pairs of two failures, and costs
    # that only completion can separate, keeps the demo-vs-rollout pairs and drops the rollout-vs-rollout ones.
    common = ["sta-tpo", "--checkpoint", str(tiny_checkpoint), "--data", *map(str, data), "--quiet"]
    pairs = {}
    for name, rules in (("all", []), ("decided", ["pair_failures=false", "tie_tolerance=1e9"])):
        assert train_main([*common, "--out", str(tmp_path / name), "steps=1", "steps_per_side=4", *rules]) == 0
        pairs[name] = json.loads((tmp_path / name / "trainer_state.json").read_text())["pairs"]
    assert 0 < pairs["decided"] < pairs["all"]
    assert train_main([*common, "--out", str(tmp_path / "bad"), "steps=1", "tie_tolerance=-1"]) == 1
    assert "tie_tolerance must be >= 0" in capsys.readouterr().err


def test_rollouts_without_pairs_are_refused(data, tiny_checkpoint, tmp_path, capsys):
    _, rollouts = data  # failures only: no success/failure pair
    assert train_main(["tpo", "--checkpoint", str(tiny_checkpoint), "--data", str(rollouts), "--out",
                       str(tmp_path / "x"), "--quiet"]) == 1
    assert "no success/failure pairs" in capsys.readouterr().err


def test_two_ranks_train_as_one_process(data, tiny_checkpoint, tmp_path):
    # The step's pairs are drawn alike on both ranks and split between them; gradients are summed.
    common = ["--checkpoint", str(tiny_checkpoint), "--data", *map(str, data), "--quiet", "steps=2", "pairs_per_step=4",
              "steps_per_side=4", "lr=1e-3", "num_threads=1"]
    alone, pair = tmp_path / "alone", tmp_path / "pair"
    assert train_main(["sta-tpo", "--out", str(alone), *common, "cost_weight=1.0"]) == 0
    run = torchrun(["sta-tpo", "--out", str(pair), *common, "cost_weight=1.0"])
    assert run.returncode == 0, run.stderr[-3000:]
    state = trainer_state(pair)
    assert state["world_size"] == 2 and len(set(state["rank_fingerprints"])) == 1  # ranks in sync
    _, gap = weight_gap(alone, pair)
    _, moved = weight_gap(alone, tiny_checkpoint)
    assert moved > 1e-2 and gap < moved / 100, (gap, moved)
    assert [(r["pairs"], round(r["loss"], 4)) for r in _progress(pair)] == [
        (4, round(r["loss"], 4)) for r in _progress(alone)]
