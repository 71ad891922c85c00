"""Bad parameter files, parameters and checkpoints for the node graph (issue 8, item 6): `stare-bringup`
and a node started on its own (`python -m stare_ros.nodes.<node> --ros-args ...`) exit 1 with one line
naming the file or the parameter, never a traceback."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from stare_bringup.cli import main

pytestmark = [pytest.mark.filterwarnings("ignore:module 'sre_:DeprecationWarning"),
              pytest.mark.timeout(180)]  # a wrongly accepted parameter starts the graph, which waits for SIGTERM
REPO = Path(__file__).resolve().parents[3]

PARAMS = {
    "malformed": ("policy_server: [1, 2\n", "is not valid YAML"),
    "not a mapping": ("- policy_server\n", "expected a mapping of node names"),
    "no ros__parameters": ("policy_server:\n  ros__parameters:\n", "with ros__parameters"),
    "wrong type": ("policy_server:\n  ros__parameters:\n    stale_after_s: fast\n", "'stale_after_s' to 'fast'"),
    "wrong shape": ("policy_server:\n  ros__parameters:\n    workspace_min: 5\n", "'workspace_min'"),
    "out of range": ("policy_server:\n  ros__parameters:\n    stale_after_s: -1.0\n", "stale_after_s must be positive"),
    "bad name list": ("policy_server:\n  ros__parameters:\n    arm_joints: [a, b]\n", "arm_joints needs 7 names"),
    "segmenter": ("stage_segmenter:\n  ros__parameters:\n    publish_rate_hz: 0.0\n",
                  "publish_rate_hz must be positive"),
}


def _one_line(capsys, *needles: str) -> None:
    err = capsys.readouterr().err.strip()
    # one error line; a library's warning on first import may come before it
    assert len([line for line in err.splitlines() if "error:" in line]) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


@pytest.mark.parametrize("case", list(PARAMS))
def test_bad_parameter_files_are_one_line(tmp_path, capsys, case):
    text, message = PARAMS[case]
    path = tmp_path / "params.yaml"
    path.write_text(text)
    assert main(["--params", str(path), "--record", str(tmp_path / "bags")]) == 1
    _one_line(capsys, message)
    if case == "malformed":
        assert main(["--params", str(tmp_path / "none.yaml")]) == 1
        _one_line(capsys, "cannot read parameter file", str(tmp_path / "none.yaml"))


def _corrupt_checkpoint(tmp_path) -> Path:
    ckpt = tmp_path / "ckpt"
    shutil.copytree(REPO / "checkpoints" / "pick-cube-sft", ckpt, ignore=shutil.ignore_patterns("*.eval"))
    data = bytearray((ckpt / "model.safetensors").read_bytes())
    data[8:64] = b"\x00" * 56
    (ckpt / "model.safetensors").write_bytes(bytes(data))
    return ckpt


def test_a_corrupt_checkpoint_is_one_line(tmp_path, capsys):
    ckpt = _corrupt_checkpoint(tmp_path)
    assert main(["--checkpoint", str(ckpt), "--record", str(tmp_path / "bags")]) == 1
    _one_line(capsys, str(ckpt / "model.safetensors"), "corrupt")


@pytest.mark.parametrize("node, params, message", [
    ("policy_server", ["stale_after_s:=fast"], "'stale_after_s' to 'fast'"),
    ("stage_segmenter", ["task:=NoSuchTask-v0"], "no stage spec for 'NoSuchTask-v0'"),
])
def test_a_node_on_its_own_refuses_bad_parameters_in_one_line(node, params, message):
    run = subprocess.run([sys.executable, "-m", f"stare_ros.nodes.{node}", "--ros-args",
                          *[a for p in params for a in ("-p", p)]], capture_output=True, text=True, timeout=120)
    err = run.stderr.strip()
    assert run.returncode == 1 and len(err.splitlines()) == 1 and message in err, err
