"""`stare-train sft` end to end on real expert demos, with a tiny model: learning, resuming after a kill,
torchrun data parallelism, and one-line errors for bad input."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from data_parallel import torchrun, trainer_state, weight_gap
from sim_training.train.cli import main as train_main
from stare_policy.policy import VLAPolicy

TINY = ["model.vision_hidden=32", "model.vision_layers=2", "model.vision_heads=2", "model.vision_intermediate=64",
        "model.text_hidden=32", "model.text_layers=1", "model.text_heads=2", "model.text_intermediate=64",
        "model.value_hidden=16", "batch_size=16", "log_every=5", "num_threads=1"]
REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def demos(real_demos):
    return real_demos("PickCube-v1").root


def _state(out: Path) -> dict:
    return json.loads((out / "trainer_state.json").read_text())


def test_short_sft_lowers_validation_loss_and_reloads(demos, tmp_path, capsys):
    out = tmp_path / "ckpt"
    code = train_main(["sft", "--data", str(demos), "--out", str(out), "--quiet", "steps=40", "val_every=20",
                       "lr=3e-3", "warmup_steps=5", *TINY])
    assert code == 0
    history = _state(out)["history"]
    assert [h["step"] for h in history] == [0, 20, 40]
    assert history[-1]["val/loss"] < history[0]["val/loss"] - 0.5, history
    assert history[-1]["val/token_acc"] > history[0]["val/token_acc"]
    assert list((tmp_path / "ckpt.logs").glob("events.out.tfevents.*")), "no TensorBoard log"

    from sim_training.data import Dataset

    episode = Dataset(demos).episode(0)
    image = episode.arrays["image"][:4]
    proprio = {k: episode.arrays[k][:4] for k in ("qpos", "tcp_pose", "goal_pos")}  # PickCube states its goal
    first, second = VLAPolicy.load(out), VLAPolicy.load(out)
    instruction = first.default_instruction("PickCube-v1")
    actions = first.act(image, instruction, proprio)
    assert actions.shape == (4, 7)
    np.testing.assert_array_equal(actions, second.act(image, instruction, proprio))
    # Rerunning a finished run resumes it and has nothing left to do.
    assert train_main(["sft", "--data", str(demos), "--out", str(out), "--quiet", "steps=40", "val_every=20",
                       "lr=3e-3", "warmup_steps=5", *TINY]) == 0
    assert "step 40/40" in capsys.readouterr().out

    # Fine-tuning starts from the checkpoint's weights: its first validation is the last one of the run.
    tuned = tmp_path / "tuned"
    assert train_main(["sft", "--data", str(demos), "--out", str(tuned), "--quiet", "steps=2", "val_every=2",
                       f"init_from={out}", "batch_size=16", "num_threads=1"]) == 0
    tuned_history = _state(tuned)["history"]
    assert tuned_history[0]["val/loss"] == pytest.approx(history[-1]["val/loss"], rel=1e-4)
    assert VLAPolicy.load(tuned).model.config == first.model.config


def test_resumes_after_a_kill(demos, tmp_path):
    out = tmp_path / "ckpt"
    args = [sys.executable, "-m", "sim_training.train.cli", "sft", "--data", str(demos), "--out", str(out), "--quiet",
            "val_every=1000", "save_every=3", *TINY]
    proc = subprocess.Popen([*args, "steps=100000"], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.time() + 240
    while not (out / "trainer_state.json").exists():
        assert proc.poll() is None and time.time() < deadline, proc.stdout.read().decode()[-2000:]
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    saved = _state(out)["step"]
    assert saved >= 3 and saved % 3 == 0
    resumed = subprocess.run([*args, f"steps={saved + 2}"], cwd=REPO, capture_output=True, text=True, timeout=240)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert f"step {saved}/{saved + 2}" in resumed.stdout
    assert _state(out)["step"] == saved + 2
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "temporary checkpoint left behind"


def test_sigterm_saves_before_exiting(demos, tmp_path):
    out = tmp_path / "ckpt"
    proc = subprocess.Popen([sys.executable, "-m", "sim_training.train.cli", "sft", "--data", str(demos), "--out",
                             str(out), "--quiet", "steps=100000", "val_every=100000", "save_every=100000", *TINY],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for line in proc.stdout:  # the banner is printed just before the loop starts
        if line.startswith("sft:"):
            break
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == 128 + signal.SIGTERM, output
    assert "checkpoint saved" in output and _state(out)["step"] >= 1


def test_two_ranks_train_as_one_process_on_the_same_global_batch(demos, tmp_path):
    # A ViT tower (layer norms): batch norms would see per-rank batch statistics (SyncBatchNorm is GPU-only),
    # and no augmentation or paraphrases, which draw per rank; then only the reduction order differs.
    exact = [*TINY, "model.vision_type=clip", "augment.shift=0", "augment.brightness=0", "augment.contrast=0",
             "paraphrases=false", "steps=3", "val_every=3", "lr=1e-3", "warmup_steps=0"]
    alone, pair = tmp_path / "alone", tmp_path / "pair"
    assert train_main(["sft", "--data", str(demos), "--out", str(alone), "--quiet", *exact]) == 0
    run = torchrun(["sft", "--data", str(demos), "--out", str(pair), "--quiet", *exact])
    assert run.returncode == 0, run.stderr[-3000:]
    state = trainer_state(pair)
    assert state["world_size"] == 2 and state["step"] == 3
    assert len(state["rank_fingerprints"]) == 2 and len(set(state["rank_fingerprints"])) == 1  # ranks in sync
    largest, _ = weight_gap(alone, pair)
    assert largest < 1e-4, largest
    VLAPolicy.load(pair)


@pytest.mark.parametrize("override, message", [
    ("bogus=1", "unknown config key 'bogus'"),
    ("lr=fast", "lr: expected float"),
    ("model.text_layers=2.5", "model.text_layers: expected int"),
    ("augment.shift", "is not of the form key=value"),
    ("model.size=huge", "size must be one of"),
])
def test_bad_config_is_one_line(demos, tmp_path, capsys, override, message):
    assert train_main(["sft", "--data", str(demos), "--out", str(tmp_path / "ckpt"), override]) == 1
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_bad_data_and_foreign_out_are_one_line(demos, tmp_path, capsys):
    assert train_main(["sft", "--data", str(tmp_path), "--out", str(tmp_path / "ckpt")]) == 1
    assert "is not a STARE dataset" in capsys.readouterr().err
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "file").write_text("mine")
    assert train_main(["sft", "--data", str(demos), "--out", str(tmp_path / "other")]) == 1
    assert "not a resumable SFT run" in capsys.readouterr().err
    assert train_main(["nonsense"]) == 2
    assert train_main(["sft", "--data", str(demos), "--out", str(tmp_path / "ft"), f"init_from={tmp_path}"]) == 1
    assert "init_from" in capsys.readouterr().err


def test_data_seen_through_another_camera_is_refused(demos, tmp_path, capsys):
    moved = tmp_path / "old-camera"
    shutil.copytree(demos, moved)
    index = json.loads((moved / "dataset.json").read_text())
    index["task"]["camera"] = {"name": "base_camera", "width": 128, "height": 128}  # ManiSkill3's default pose
    (moved / "dataset.json").write_text(json.dumps(index))
    assert train_main(["sft", "--data", str(moved), "--out", str(tmp_path / "ckpt")]) == 1
    err = capsys.readouterr().err.strip()
    assert "recorded with camera" in err and "record the demonstrations again" in err and len(err.splitlines()) == 1
