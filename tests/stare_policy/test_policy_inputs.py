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


def test_a_goal_input_that_a_trained_task_lacked_is_zero_where_absent(repo_root):
    """The StackCube checkpoint was fine-tuned from PickCube's and reads its goal position, which StackCube
    lacks: SFT fed zeros there, and so does every caller, through the policy's one input path."""
    policy = VLAPolicy.load(repo_root / "checkpoints" / "stack-cube-sft")
    assert "goal_pos" in policy.processor.config.proprio_keys and policy.goal_inputs("StackCube-v1") == ()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 128, 128, 3), dtype=np.uint8)
    robot = {"qpos": rng.normal(size=(2, 9)).astype(np.float32), "tcp_pose": rng.normal(size=(2, 7)).astype(np.float32)}
    zeros = {**robot, "goal_pos": np.zeros((2, 3), np.float32)}
    instruction = policy.default_instruction()
    np.testing.assert_array_equal(policy.act(images, instruction, robot), policy.act(images, instruction, zeros))
    single = {k: v[0] for k, v in robot.items()}
    np.testing.assert_array_equal(policy.act(images[0], instruction, single),
                                  policy.act(images[0], instruction, {k: v[0] for k, v in zeros.items()}))
    with pytest.raises(PolicyInputError, match="proprioception lacks tcp_pose"):  # robot state is never invented
        policy.act(images[0], instruction, {"qpos": single["qpos"]})


def test_a_goal_input_that_every_trained_task_states_stays_required(repo_root):
    policy = VLAPolicy.load(repo_root / "checkpoints" / "pick-cube-sft")
    assert policy.goal_inputs("PickCube-v1") == ("goal_pos",) and policy.goal_inputs() == ("goal_pos",)
    with pytest.raises(PolicyInputError, match="proprioception lacks goal_pos"):
        policy.act(np.zeros((128, 128, 3), np.uint8), "pick up the red cube", GOOD_PROPRIO)
