"""Bad observations fail with one clear line, before they reach the model."""

import numpy as np
import pytest
import torch

from stare_policy.model import PolicyInputError, VLAConfig, checkpoint
from stare_policy.model.text_tokenizer import train_text_tokenizer
from stare_policy.policy import VLAPolicy


@pytest.fixture(scope="module")
def policy():
    torch.manual_seed(0)
    config = VLAConfig(vision_hidden=32, vision_layers=2, vision_heads=2, vision_intermediate=64, text_hidden=32,
                       text_layers=1, text_heads=2, text_intermediate=64)
    model, processor = checkpoint.build(config, train_text_tokenizer(["In: go?\nOut:"], 300),
                                        {"q01": [-1.0] * 7, "q99": [1.0] * 7}, {"mean": [0.0] * 16, "std": [1.0] * 16},
                                        (128, 128))
    return VLAPolicy(model.eval(), processor)


GOOD_PROPRIO = {"qpos": np.zeros(9, np.float32), "tcp_pose": np.zeros(7, np.float32)}


@pytest.mark.parametrize("image, message", [
    (np.zeros((128, 128, 3), np.float32),
     r"image must be uint8 RGB of shape \(128, 128, 3\) .* got float32 \(128, 128, 3\)"),
    (np.zeros((64, 64, 3), np.uint8), r"got uint8 \(64, 64, 3\)"),
    (np.zeros((128, 128), np.uint8), r"got uint8 \(128, 128\)"),
    (np.zeros((3, 128, 128), np.uint8), r"got uint8 \(3, 128, 128\)"),
    ([[0, 1]], r"image must be uint8"),
])
def test_bad_images(policy, image, message):
    with pytest.raises(PolicyInputError, match=message):
        policy.act(image, "go", GOOD_PROPRIO)


def test_bad_proprioception(policy):
    image = np.zeros((128, 128, 3), np.uint8)
    with pytest.raises(PolicyInputError, match="proprioception lacks tcp_pose"):
        policy.act(image, "go", {"qpos": np.zeros(9)})
    with pytest.raises(PolicyInputError, match=r"proprio 'qpos' must have shape \(9,\)"):
        policy.act(image, "go", {"qpos": np.zeros(7), "tcp_pose": np.zeros(7)})
    with pytest.raises(PolicyInputError, match="proprioception is required"):
        policy.act(image, "go")
    with pytest.raises(PolicyInputError, match="non-finite"):
        policy.act(image, "go", np.full(16, np.nan))
    with pytest.raises(PolicyInputError, match="2 proprio rows for 1 images"):
        policy.act(image, "go", np.zeros((2, 16)))
    with pytest.raises(PolicyInputError, match="2 instructions for 1 images"):
        policy.act(image, ["go", "stop"], np.zeros(16))
    with pytest.raises(ValueError, match="temperature must be >= 0"):
        policy.act(image, "go", np.zeros(16), temperature=-1)


def test_good_inputs_in_every_accepted_form(policy):
    image = np.zeros((128, 128, 3), np.uint8)
    a = policy.act(image, "go", GOOD_PROPRIO)
    b = policy.act(torch.zeros(1, 128, 128, 3, dtype=torch.uint8), "go", np.zeros((1, 16)))
    assert a.shape == (7,) and b.shape == (1, 7) and np.array_equal(a, b[0])
    assert np.all(np.abs(a) <= 1.0)
