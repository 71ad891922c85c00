"""Checkpoints: one call loads them, actions survive the round trip, bad checkpoints fail in one line."""

import json

import numpy as np
import pytest
import torch

from stare_policy.model import CheckpointError, checkpoint
from stare_policy.policy import VLAPolicy

TASKS = [{"env_id": "PickCube-v1", "instructions": ["pick up the red cube and move it to the green goal"]}]


@pytest.fixture
def saved(tiny_policy, tmp_path):
    model, processor = tiny_policy
    with torch.no_grad():  # move the weights off their initialisation so a load that silently re-inits fails
        for p in model.parameters():
            p.add_(0.01 * torch.randn_like(p))
    VLAPolicy(model, processor, TASKS).save(tmp_path / "ckpt")
    return tmp_path / "ckpt", VLAPolicy(model, processor, TASKS)


def test_save_load_gives_identical_actions_and_carries_statistics(saved, observation):
    path, policy = saved
    files = sorted(p.name for p in path.iterdir())
    assert files == ["config.json", "model.safetensors", "norm_stats.json", "tokenizer"]
    loaded = VLAPolicy.load(path)
    image, proprio = observation["image"], observation["proprio"]
    instruction = loaded.default_instruction("PickCube-v1")
    np.testing.assert_array_equal(policy.act(image, instruction, proprio), loaded.act(image, instruction, proprio))
    stats = json.loads((path / "norm_stats.json").read_text())
    assert stats["action"] == policy.processor.action_tokenizer.stats()
    assert loaded.processor.action_tokenizer.stats() == stats["action"]
    assert stats["proprio"]["mean"] == pytest.approx([0.1] * 16)
    assert loaded.tasks == TASKS
    # The tokenizer travels too: the same prompt ids without the training corpus.
    assert loaded.processor.prompt_ids("zebra") == policy.processor.prompt_ids("zebra")


def test_nothing_in_a_checkpoint_is_pickled(saved):
    path, _ = saved
    for file in path.rglob("*"):
        if file.is_file():
            assert file.suffix in (".json", ".safetensors"), file
            assert not file.read_bytes().startswith(b"\x80"), f"{file} looks like a pickle"


def test_corrupt_weights_fail_clearly(saved):
    path, _ = saved
    (path / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="model.safetensors is corrupt"):
        VLAPolicy.load(path)


def test_truncated_weights_fail_clearly(saved):
    path, _ = saved
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        VLAPolicy.load(path)


def test_missing_statistics_fail_clearly(saved):
    path, _ = saved
    (path / "norm_stats.json").write_text(json.dumps({"action": {"q01": [0.0] * 7}}))
    with pytest.raises(CheckpointError, match="norm_stats.json: action statistics lack q99"):
        VLAPolicy.load(path)
    (path / "norm_stats.json").unlink()
    with pytest.raises(CheckpointError, match="norm_stats.json is missing"):
        VLAPolicy.load(path)


def test_bad_config_fails_clearly(saved):
    path, _ = saved
    meta = json.loads((path / "config.json").read_text())
    meta["model"]["text_layers"] = "three"
    (path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="text_layers: expected int"):
        VLAPolicy.load(path)
    (path / "config.json").write_text("{ not json")
    with pytest.raises(CheckpointError, match="config.json is corrupt"):
        VLAPolicy.load(path)


def test_weights_of_another_model_fail_clearly(saved):
    path, _ = saved
    meta = json.loads((path / "config.json").read_text())
    meta["backbone"]["text_config"]["num_hidden_layers"] = 1
    (path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="does not fit the model"):
        VLAPolicy.load(path)


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint directory"):
        VLAPolicy.load(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="config.json is missing"):
        VLAPolicy.load(tmp_path / "empty")


def test_atomic_directory_keeps_the_old_checkpoint_when_writing_fails(saved):
    path, _ = saved
    before = (path / "model.safetensors").read_bytes()
    with pytest.raises(RuntimeError):
        with checkpoint.atomic_directory(path) as tmp:
            (tmp / "partial").write_text("x")
            raise RuntimeError("killed while writing")
    assert (path / "model.safetensors").read_bytes() == before
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []
    # A kill between the two renames of a swap leaves only "<ckpt>.old": recovery puts it back.
    path.rename(path.with_name(path.name + ".old"))
    checkpoint.recover(path)
    assert (path / "model.safetensors").read_bytes() == before
