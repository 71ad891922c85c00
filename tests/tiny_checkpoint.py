"""A real (tiny, briefly trained) PickCube policy checkpoint, made once per test session by real SFT on
the session's real demos (`stage_demos.real_demos`). Shared by the evaluation and ROS tests."""

import pytest

TINY = ["model.vision_hidden=32", "model.vision_layers=2", "model.vision_heads=2", "model.vision_intermediate=64",
        "model.text_hidden=32", "model.text_layers=1", "model.text_heads=2", "model.text_intermediate=64",
        "model.value_hidden=16", "batch_size=8", "num_threads=1"]


@pytest.fixture(scope="session")
def tiny_checkpoint(real_demos, tmp_path_factory):
    from sim_training.train.cli import main as train_main

    out = tmp_path_factory.mktemp("tiny-ckpt") / "ckpt"
    demos = real_demos("PickCube-v1").root
    assert train_main(["sft", "--data", str(demos), "--out", str(out), "--quiet", "steps=2", "val_every=2", *TINY]) == 0
    return out
