"""Running a training command under `torchrun` in tests, and comparing the weights two runs end with."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

REPO = Path(__file__).resolve().parents[1]


def torchrun(args: list[str], nproc: int = 2, timeout: float = 900) -> subprocess.CompletedProcess:
    """`torchrun --standalone --nproc_per_node N -m sim_training.train.cli ARGS`, one torch thread per rank."""
    launcher = Path(sys.executable).with_name("torchrun")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([str(launcher), "--standalone", "--nproc_per_node", str(nproc), "-m", "sim_training.train.cli",
                           *args], cwd=REPO, capture_output=True, text=True, timeout=timeout, env=env)


def trainer_state(out: Path) -> dict:
    return json.loads((out / "trainer_state.json").read_text())


def weight_gap(a: Path, b: Path) -> tuple[float, float]:
    """(largest |a - b| over all weights, the L2 norm of a - b over all of them) of two checkpoints."""
    wa, wb = load_file(str(a / "model.safetensors")), load_file(str(b / "model.safetensors"))
    assert wa.keys() == wb.keys()
    diffs = [(wa[k].double() - wb[k].double()).flatten() for k in wa]
    return max(float(d.abs().max()) for d in diffs), float(torch.cat(diffs).norm())
