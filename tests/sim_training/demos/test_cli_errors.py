"""Bad input to stare-demos: one clear line, non-zero exit, no traceback, nothing written."""

import subprocess
import sys

import pytest


def _run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "sim_training.demos.cli", *args], capture_output=True, text=True,
                          stdin=subprocess.DEVNULL, timeout=300, cwd=cwd)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--task", "PickKube-v1", "--episodes", "2"], "unknown task 'PickKube-v1'"),
        (["--task", "PickCube-v1", "--episodes", "0"], "--episodes must be positive"),
        (["--task", "PickCube-v1", "--episodes", "-3"], "--episodes must be positive"),
        (["--task", "PickCube-v1", "--episodes", "2", "--workers", "0"], "--workers must be positive"),
        (["--task", "PutCarrotOnPlateInScene-v1", "--episodes", "2"], "no motion-planning solution"),
        (["--task", "LiftPegUpright-v1", "--episodes", "2", "--action-noise", "0.1"], "needs a scripted expert"),
        (["--task", "PickCube-v1", "--episodes", "2", "--action-noise", "-0.1"], "--action-noise must be"),
        (["--task", "PickCube-v1", "--episodes", "2", "--action-noise", "inf"], "--action-noise must be"),
    ],
)
def test_bad_arguments(args, message, tmp_path):
    proc = _run(*args, "--out", str(tmp_path / "out"))
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()


def test_unwritable_output(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    proc = _run("--task", "PickCube-v1", "--episodes", "1", "--out", str(blocker / "demos"))
    assert proc.returncode == 1
    assert "stare-demos: error: cannot write to" in proc.stderr and "Traceback" not in proc.stderr


def test_existing_output_needs_overwrite(tmp_path):
    (tmp_path / "out").mkdir()
    proc = _run("--task", "PickCube-v1", "--episodes", "1", "--out", str(tmp_path / "out"))
    assert proc.returncode == 2 and "--overwrite" in proc.stderr
