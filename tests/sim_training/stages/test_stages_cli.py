"""`stare-stages` on real demo datasets, and its one-line errors on bad input."""

import json
import subprocess
import sys

import pytest

from sim_training.data import DatasetWriter, Episode
from sim_training.stages.cli import main
from sim_training.tasks import get_task


@pytest.fixture(scope="module")
def data_root(real_demos):
    for task in ("PickCube-v1", "PushCube-v1"):
        dataset = real_demos(task)
    return dataset.root.parent


def test_statistics_json_and_timeline(data_root, tmp_path, capsys):
    out_json, out_png = tmp_path / "stats.json", tmp_path / "timeline.png"
    assert main(["--data", str(data_root), "--task", "PickCube-v1", "--task", "PushCube-v1",
                 "--json", str(out_json), "--plot", str(out_png), "--quiet"]) == 0
    stats = json.loads(out_json.read_text())
    assert set(stats) == {"PickCube-v1", "PushCube-v1"}
    pick = stats["PickCube-v1"]
    assert pick["episodes"] == 2 and pick["labels_from"] == "privileged"
    assert 0.95 <= pick["agreement"] <= 1.0 and pick["transition_error_steps_median"] <= 2
    assert list(pick["stage_fraction"]) == ["Reach", "Grasp", "Transport", "Settle"]
    assert sum(pick["stage_fraction"].values()) == pytest.approx(1.0)
    assert pick["reached"]["Settle"] == 1.0
    assert stats["PushCube-v1"]["observable"] == {"Reach": True, "Push": False}
    assert stats["PushCube-v1"]["agreement_observable"] == 1.0  # Push folded into Reach: nothing left to miss
    assert pick["agreement_observable"] == pick["agreement"]
    assert out_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out_png.stat().st_size > 20_000
    printed = capsys.readouterr().out
    assert "PickCube-v1: 2 episodes" in printed and "not observable from proprioception" in printed


def _error(argv, capsys) -> str:
    """Run the CLI expecting failure; the last stderr line (argparse prints usage first)."""
    try:
        rc = main(argv)
    except SystemExit as exc:  # argparse errors exit 2
        rc = exc.code
    err = capsys.readouterr().err
    assert rc != 0 and "Traceback" not in err
    return err.strip().splitlines()[-1]


def test_bad_input_gives_one_line_errors(data_root, tmp_path, capsys):
    assert "does not exist" in _error(["--data", str(tmp_path / "missing")], capsys)
    assert "holds no STARE dataset" in _error(["--data", str(tmp_path)], capsys)
    assert "no stage spec for task 'Nope-v1'" in _error(["--data", str(data_root), "--task", "Nope-v1"], capsys)
    assert "no dataset for PickCube-v1" in _error(["--data", str(data_root / "PushCube-v1"), "--task", "PickCube-v1"], capsys)
    assert "out of range" in _error(
        ["--data", str(data_root / "PushCube-v1"), "--plot", str(tmp_path / "x.png"), "--episode", "5", "--quiet"], capsys)
    assert "must be >= 0" in _error(["--data", str(data_root), "--episode", "-1"], capsys)


def test_a_task_without_stages_is_a_clear_error(real_demos, tmp_path, capsys):
    demo = real_demos("PickCube-v1").episode(0)
    with DatasetWriter(tmp_path / "sphere", get_task("PlaceSphere-v1")) as writer:
        writer.add(Episode({k: v for k, v in demo.arrays.items() if not k.startswith(("priv.", "flag."))},
                           demo.seed, "place the ball", False))
        writer.commit()
    assert "no stage spec for task 'PlaceSphere-v1'" in _error(["--data", str(tmp_path / "sphere"), "--quiet"], capsys)


def test_console_script_runs_without_a_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "sim_training.stages.cli", "--data", str(tmp_path / "none")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1].startswith("stare-stages: error:") and "Traceback" not in proc.stderr
