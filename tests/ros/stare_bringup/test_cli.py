"""`stare-bringup --sim` end to end: a real episode through ROS with a tiny trained checkpoint, the
per-episode line, the bag and the JSON; bad input exits 1 with one line."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from ros_harness import bag_custom_data

from stare_bringup.cli import main

pytestmark = pytest.mark.filterwarnings("ignore:module 'sre_:DeprecationWarning")


def test_sim_episodes_print_and_write_json(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "summary.json"
    code = main(["--sim", "--task", "PickCube-v1", "--episodes", "2", "--max-steps", "3", "--checkpoint",
                 str(tiny_checkpoint), "--record", str(tmp_path / "bags"), "--json", str(out)])
    assert code == 0
    data = json.loads(out.read_text())
    assert data["task"] == "PickCube-v1" and data["episodes"] == 2 and 0 <= data["successes"] <= 2
    assert data["control_rate_hz"] == 20.0 and data["seeds"] == [1_000_000, 1_000_001]
    assert len(data["bags"]) == 2 and all(os.path.isdir(b) for b in data["bags"])
    assert all(stages and stages[0] == "Reach" for stages in data["stages"])
    assert all(1 <= s <= 3 for s in data["steps"])
    for bag, seed in zip(data["bags"], data["seeds"]):
        custom = bag_custom_data(bag)
        assert custom["stare.seed"] == str(seed) and custom["stare.checkpoint"] == str(tiny_checkpoint)
    printed = capsys.readouterr().out
    assert "episode 1/2 seed 1000000:" in printed and "episode 2/2 seed 1000001:" in printed
    assert data["bags"][0] in printed and "Reach" in printed


def test_missing_checkpoint_is_one_line_with_the_way_out(tmp_path, capsys):
    assert main(["--sim", "--episodes", "1", "--checkpoint", str(tmp_path / "none")]) == 1
    err = capsys.readouterr().err
    assert "checkpoint" in err and "not found" in err and "stare-train sft" in err


def test_bad_arguments_exit_non_zero(capsys):
    with pytest.raises(SystemExit):
        main(["--sim", "--episodes", "0"])
    assert "--episodes must be positive" in capsys.readouterr().err


def test_sigterm_shuts_the_robot_graph_down_cleanly(tiny_checkpoint, tmp_path):
    """Without --sim the graph runs until SIGTERM, then exits 0."""
    import signal
    import time

    proc = subprocess.Popen([sys.executable, "-m", "stare_bringup.cli", "--checkpoint", str(tiny_checkpoint),
                             "--record", str(tmp_path / "bags")], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    try:
        deadline = time.monotonic() + 120
        line = ""
        while "running" not in line and time.monotonic() < deadline and proc.poll() is None:
            line = proc.stdout.readline()
        assert "policy_server, stage_segmenter, episode_logger running" in line
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
