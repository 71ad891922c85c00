"""`stare-retrain` on real bags, and `stare-loop`, which records them: the shipped PickCube checkpoint
runs through the real ROS graph (one success, two timeouts), is retrained from those bags, the new
checkpoint is swapped into the running policy_server by its service and evaluated there."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from sim_training.preference.pairs import LabelledRollout, PairingRule, stage_pairs
from sim_training.retrain.cli import main as retrain_main
from stare_policy.policy import VLAPolicy
from stare_policy.stages.calculator import EpisodeSummary, StageSummary
from stare_policy.stages.segmentation import Segmentation

REPO = Path(__file__).resolve().parents[3]
SHIPPED = REPO / "checkpoints" / "pick-cube-sft"


@pytest.fixture(scope="module")
def loop(tmp_path_factory):
    root = tmp_path_factory.mktemp("retrain")
    (root / "ros_log").mkdir()
    env = {**os.environ, "ROS_AUTOMATIC_DISCOVERY_RANGE": "LOCALHOST", "ROS_DOMAIN_ID": str(150 + os.getpid() % 50),
           "ROS_LOG_DIR": str(root / "ros_log")}
    env.pop("ROS_LOCALHOST_ONLY", None)
    # Seeds 1,000,001-003 with 25 steps: the shipped policy succeeds on the first and runs out of time on the others.
    out = root / "loop"
    run = subprocess.run([sys.executable, "-m", "stare_bringup.loop", "--task", "PickCube-v1", "--checkpoint", str(SHIPPED),
                          "--out", str(out), "--record-episodes", "3", "--record-seed-start", "1000001",
                          "--eval-episodes", "1", "--skip-before", "--max-steps", "25", "steps=1", "steps_per_side=2"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=900)
    assert run.returncode == 0, run.stdout[-2000:] + run.stderr[-2000:]
    return out


@pytest.fixture(scope="module")
def bags(loop) -> list[str]:
    """The recorded episodes' bags (the loop's retraining lists them; the evaluated one is left out)."""
    return json.loads((loop / "retrain" / "trainer_state.json").read_text())["bags"]


def test_the_loop_records_retrains_swaps_and_evaluates(loop):
    summary = json.loads((loop / "loop.json").read_text())
    assert summary["recorded"]["episodes"] == 3 and summary["recorded"]["successes"] == 1
    assert summary["retrain"]["episodes_used"] == 3 and summary["retrain"]["steps"] == 1
    assert summary["after"]["episodes"] == 1 and "before" not in summary and summary["swap_seconds"] >= 0
    assert summary["new_checkpoint"] == str((loop / "retrain").resolve())
    VLAPolicy.load(loop / "retrain")
    assert len([p for p in (loop / "bags").iterdir() if p.is_dir()]) == 4  # 3 recorded + 1 evaluated


def test_one_round_from_bags_gives_a_loadable_checkpoint_and_its_record(bags, tmp_path, capsys):
    out, summary = tmp_path / "new", tmp_path / "retrain.json"
    args = ["--bags", *bags, "--checkpoint", str(SHIPPED), "--out", str(out), "--json", str(summary), "--quiet",
            "steps=2", "steps_per_side=4", "num_threads=1"]
    assert retrain_main(args) == 0
    report = json.loads(summary.read_text())
    assert report["episodes_read"] == report["episodes_used"] == 3 and report["skipped"] == []
    assert report["successes"] == 1 and report["pairs"] == sum(report["pairs_per_stage"].values()) > 0
    assert set(report["pairs_per_stage"]) == {"Reach", "Grasp", "Transport", "Settle"}
    assert report["steps"] == 2 and np.isfinite(report["final_loss"]) and report["seconds"] > 0
    state = json.loads((out / "trainer_state.json").read_text())
    assert state["algorithm"] == "sta-tpo" and state["bags"] == bags and len(bags) == 3
    VLAPolicy.load(out)
    assert "3/3 episodes" in capsys.readouterr().out
    # TPO pairs the success with each failure (same instruction, no shared start on a robot).
    assert retrain_main([*args, "--method", "tpo", "--out", str(tmp_path / "tpo")]) == 0
    assert json.loads(summary.read_text())["pairs_per_stage"] == {"trajectory": 2}


def test_bad_input_is_one_line(bags, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = [
        (["--bags", str(empty), "--checkpoint", str(SHIPPED)], "no usable episodes"),
        (["--bags", *bags, "--checkpoint", str(tmp_path)], "is not a policy checkpoint"),
        (["--bags", *bags, "--checkpoint", str(SHIPPED), "--reference", str(empty)], "--reference"),
        (["--bags", *bags, "--checkpoint", str(SHIPPED), "--max-initial-distance", "0"], "give no stage pairs"),
        (["--bags", *bags, "--checkpoint", str(SHIPPED), "beta=-1"], "must be positive"),
    ]
    for extra, message in cases:
        assert retrain_main([*extra, "--out", str(tmp_path / "x"), "--quiet"]) == 1, extra
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, (extra, err)
    assert not (tmp_path / "x").exists()


def _rollout(name: str, instruction: str, initial, cost: float) -> LabelledRollout:
    seg = Segmentation(("Reach", "Grasp"), np.array([0, 0, 1]))
    summary = EpisodeSummary([StageSummary("Reach", True, True, 0, 2, cost), StageSummary("Grasp", True, False, 2, 1, 1.0)],
                             "Grasp", 1)
    return LabelledRollout(name, seg, summary, False, instruction, np.array(initial, float))


def test_robot_pairing_groups_by_instruction_and_similar_starts():
    rollouts = [_rollout("a", "pick", [0, 0, 0], 0.1), _rollout("b", "pick", [0.05, 0, 0], 0.3),
                _rollout("c", "pick", [0.5, 0, 0], 0.2), _rollout("d", "push", [0, 0, 0], 0.0)]
    # Simulation's rule: no two share a start, so nothing is paired.
    assert stage_pairs(rollouts, [0]) == []
    anywhere = stage_pairs(rollouts, [0], PairingRule(group_by="instruction"))
    assert sorted((p.winner, p.loser) for p in anywhere) == [(0, 1), (0, 2), (2, 1)]  # d: another instruction
    near = stage_pairs(rollouts, [0], PairingRule(group_by="instruction", max_initial_distance_m=0.1))
    assert [(p.winner, p.loser) for p in near] == [(0, 1)]
    with pytest.raises(ValueError, match="group_by"):
        PairingRule(group_by="seed")
