"""Bad config files and checkpoints for every training command (issue 8, item 6): malformed YAML, a file
that is not a mapping, unknown keys, wrong types, out-of-range values, a missing config file, corrupt
safetensors -> exit 1 with one line naming the key or the file, and no traceback. (Overrides on the
command line are covered beside each command's own tests.)"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from sim_training.ipi.cli import main as ipi_main
from sim_training.train.cli import main as train_main

REPO = Path(__file__).resolve().parents[3]
SHIPPED = REPO / "checkpoints" / "pick-cube-sft"

FILES = {
    "malformed": ("steps: [1, 2\nlr: 3\n", "is not valid YAML"),
    "not a mapping": ("- steps\n- lr\n", "expected a mapping, got list"),
    "unknown key": ("stepz: 3\n", "unknown config key stepz"),
    "wrong type": ("lr: fast\n", "lr: expected float, got str 'fast'"),
}


def _tiny_dataset(root: Path) -> Path:
    from sim_training.data import DatasetWriter, Episode
    from sim_training.tasks import get_task

    spec, rng, n = get_task("PickCube-v1"), np.random.default_rng(0), 4
    arrays = {"image": rng.integers(0, 255, (n, 8, 8, 3), dtype=np.uint8),
              "qpos": rng.normal(size=(n, 9)).astype(np.float32),
              "tcp_pose": rng.normal(size=(n, 7)).astype(np.float32),
              "goal_pos": rng.normal(size=(n, 3)).astype(np.float32),
              "action": rng.uniform(-1, 1, size=(n, 7)).astype(np.float32)}
    with DatasetWriter(root, spec, source={"kind": "test"}) as writer:
        writer.add(Episode(arrays=arrays, seed=0, instruction=spec.instructions[0], success=True))
        writer.commit()
    return root


def _argv(command: str, tmp_path: Path) -> list[str]:
    out = ["--out", str(tmp_path / "out")]
    return {"sft": ["sft", "--data", str(tmp_path / "data"), *out],
            "tpo": ["tpo", "--checkpoint", str(tmp_path / "ckpt"), "--data", str(tmp_path / "data"), *out],
            "ppo": ["ppo", "--checkpoint", str(tmp_path / "ckpt"), "--task", "PickCube-v1", *out]}[command]


def _one_line(capsys, *needles: str) -> str:
    err = capsys.readouterr().err.strip()
    # one error line; a library's warning on first import may come before it
    assert len([line for line in err.splitlines() if "error:" in line]) == 1 and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


@pytest.mark.parametrize("command", ["sft", "tpo", "ppo"])
@pytest.mark.parametrize("case", list(FILES))
def test_bad_config_files_are_one_line(tmp_path, capsys, command, case):
    text, message = FILES[case]
    config = tmp_path / "config.yaml"
    config.write_text(text)
    assert train_main([*_argv(command, tmp_path), "--config", str(config)]) == 1
    _one_line(capsys, message, *([str(config)] if case == "malformed" else []))
    assert train_main([*_argv(command, tmp_path), "--config", str(tmp_path / "none.yaml")]) == 1
    _one_line(capsys, "cannot read config", str(tmp_path / "none.yaml"))


@pytest.mark.parametrize("case", list(FILES))
def test_bad_ipi_config_files_are_one_line(tmp_path, capsys, case):
    text, message = FILES[case]
    text = {"unknown key": "sft:\n  stepz: 3\n", "wrong type": "tpo:\n  lr: fast\n"}.get(case, text)
    message = {"unknown key": "unknown config key sft.stepz", "wrong type": "tpo.lr: expected float"}.get(case, message)
    config = tmp_path / "ipi.yaml"
    config.write_text(text)
    (tmp_path / "ckpt").mkdir()
    args = ["--out", str(tmp_path / "run"), "--task", "PickCube-v1", "--sft-checkpoint", str(tmp_path / "ckpt")]
    assert ipi_main([*args, "--config", str(config)]) == 1
    _one_line(capsys, message)
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("command, override, message", [
    ("sft", "lr=-1", "lr must be positive"),
    ("sft", "val_every=0", "val_every must be positive"),
    ("tpo", "lr=0", "lr must be positive"),
    ("tpo", "beta=-1", "must be positive"),
    ("tpo", "nll_weight=nan", "nll_weight must be >= 0"),
    ("ppo", "lr=-0.1", "lr must be positive"),
    ("ppo", "gamma=1.5", "gamma must be in (0, 1]"),
    ("sft", "device=tpu", "device must be 'auto', 'cpu' or 'cuda'"),
    ("ppo", "device=gpu", "device must be 'auto', 'cpu' or 'cuda'"),
])
def test_out_of_range_values_are_one_line(tmp_path, capsys, command, override, message):
    _tiny_dataset(tmp_path / "data")
    shutil.copytree(SHIPPED, tmp_path / "ckpt", ignore=shutil.ignore_patterns("*.eval", "trainer_state.json"))
    assert train_main([*_argv(command, tmp_path), override]) == 1
    _one_line(capsys, message)
    assert not (tmp_path / "out").exists()


@pytest.mark.skipif(__import__("torch").cuda.is_available(), reason="this machine has a CUDA GPU")
@pytest.mark.parametrize("command", ["sft", "ppo"])  # tpo picks its device after pairing (this data has no pairs)
def test_asking_for_cuda_without_a_gpu_is_one_line(tmp_path, capsys, command):
    _tiny_dataset(tmp_path / "data")
    shutil.copytree(SHIPPED, tmp_path / "ckpt", ignore=shutil.ignore_patterns("*.eval", "trainer_state.json"))
    assert train_main([*_argv(command, tmp_path), "device=cuda"]) == 1
    _one_line(capsys, "device=cuda, but torch sees no CUDA GPU on this machine")
    assert not (tmp_path / "out").exists()


def test_corrupt_or_missing_checkpoint_files_name_the_file(tmp_path, capsys):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(SHIPPED, ckpt, ignore=shutil.ignore_patterns("*.eval", "trainer_state.json"))
    weights = ckpt / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[8:64] = b"\x00" * 56
    weights.write_bytes(bytes(data))
    assert train_main(_argv("ppo", tmp_path)) == 1
    _one_line(capsys, str(weights), "corrupt")
    weights.unlink()
    assert train_main(_argv("ppo", tmp_path)) == 1
    _one_line(capsys, "model.safetensors is missing")
    (ckpt / "norm_stats.json").write_text("{")
    assert train_main(_argv("ppo", tmp_path)) == 1
    _one_line(capsys, str(ckpt / "norm_stats.json"))


def test_a_dataset_index_cannot_name_files_outside_it(tmp_path):
    import json

    from sim_training.data import Dataset, DatasetError

    root = _tiny_dataset(tmp_path / "data")
    secret = tmp_path / "elsewhere.npz"
    np.savez(secret, image=np.zeros(1))
    index = json.loads((root / "dataset.json").read_text())
    for name in ("../elsewhere.npz", str(secret)):
        index["episodes"][0]["file"] = name
        (root / "dataset.json").write_text(json.dumps(index))
        with pytest.raises(DatasetError, match="outside the dataset"):
            Dataset(root).episode(0)
