"""A tiny small-size VLA (random weights, real classes) shared by the model tests."""

import numpy as np
import pytest

from stare_policy.model import VLAConfig, checkpoint
from stare_policy.model.text_tokenizer import train_text_tokenizer

TINY = dict(vision_hidden=32, vision_layers=2, vision_heads=2, vision_intermediate=64, text_hidden=32,
            text_layers=2, text_heads=2, text_intermediate=64, value_hidden=16)
INSTRUCTIONS = ["pick up the red cube and move it to the green goal", "push the blue cube into the target"]
ACTION_STATS = {"q01": [-0.2, -0.2, -0.3, -0.1, -0.1, -0.6, -1.0], "q99": [0.2, 0.2, 0.4, 0.1, 0.1, 0.8, 1.0]}
PROPRIO_STATS = {"mean": [0.1] * 16, "std": [0.5] * 16}


@pytest.fixture(params=["resnet", "swin", "clip"])
def tiny_policy(request):
    """(model, processor) of a freshly initialised tiny small-size VLA, with either vision tower."""
    import torch

    torch.manual_seed(0)
    config = VLAConfig(**TINY, vision_type=request.param)
    corpus = [config.prompt.format(instruction=i) for i in INSTRUCTIONS]
    tokenizer = train_text_tokenizer(corpus, 300)
    model, processor = checkpoint.build(config, tokenizer, ACTION_STATS, PROPRIO_STATS, (128, 128))
    return model.eval(), processor


@pytest.fixture
def instructions():
    return list(INSTRUCTIONS)


@pytest.fixture
def observation():
    rng = np.random.default_rng(0)
    return {
        "image": rng.integers(0, 256, (128, 128, 3), dtype=np.uint8),
        "proprio": {"qpos": rng.normal(size=9).astype(np.float32), "tcp_pose": rng.normal(size=7).astype(np.float32)},
    }
