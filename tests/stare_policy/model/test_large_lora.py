"""The large-model path: a LLaVA-family checkpoint loaded from a local directory and fine-tuned with LoRA.

A tiny randomly initialised `LlavaForConditionalGeneration` saved with `save_pretrained` stands in for a
real one (same class, same files: config.json, model.safetensors, tokenizer), so this exercises the code
that loads e.g. llava-1.5-7b from disk.
"""

import numpy as np
import pytest
import torch
from safetensors.torch import load_file
from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

from stare_policy.model import VLAConfig, checkpoint
from stare_policy.model.text_tokenizer import train_text_tokenizer
from stare_policy.policy import VLAPolicy

ACTION_STATS = {"q01": [-0.2] * 6 + [-1.0], "q99": [0.2] * 6 + [1.0]}
PROPRIO_STATS = {"mean": [0.0] * 16, "std": [1.0] * 16}


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-llava")
    tokenizer = train_text_tokenizer(["In: What action should the robot take to pick up the cube?\nOut:"], 300)
    vocab = len(tokenizer) + 300  # more ids than the text uses: the last 256 become the action tokens
    config = LlavaConfig(
        vision_config=CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                                       num_attention_heads=2, image_size=64, patch_size=8),
        text_config=LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
                                num_key_value_heads=2, vocab_size=vocab, max_position_embeddings=256),
        image_token_index=vocab - 1,
    )
    LlavaForConditionalGeneration(config).save_pretrained(path, safe_serialization=True)
    tokenizer.save_pretrained(path)
    return path


def test_lora_trains_one_step_and_saves_only_adapters(base_dir, tmp_path):
    config = VLAConfig(size="large", base_model_path=str(base_dir), lora_r=8, lora_alpha=16, value_hidden=16)
    model, processor = checkpoint.build(config, None, ACTION_STATS, PROPRIO_STATS, (128, 128))
    assert model.image_size == 64 and model.action_offset == model.vocab_size - 256
    frozen_before = {k: v.clone() for k, v in model.state_dict().items() if k in model.frozen_keys}
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any("lora_A" in n for n in trainable) and any("lm_head" in n for n in trainable)
    assert not any("vision_tower" in n and "lora" not in n for n in trainable)

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (2, 128, 128, 3), dtype=np.uint8)
    proprio = rng.normal(size=(2, 16)).astype(np.float32)
    inputs = processor(images, ["pick up the cube", "pick it up"], proprio)
    bins = torch.randint(0, 256, (2, 7))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    model.train()
    loss = -model.evaluate_actions(inputs, bins)[0].mean()
    loss.backward()
    optimizer.step()
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in frozen_before.items()), "a frozen base weight changed"
    assert model.evaluate_actions(inputs, bins)[0].mean().item() > -loss.item()  # the step helped

    model.eval()
    policy = VLAPolicy(model, processor, [{"env_id": "PickCube-v1", "instructions": ["pick up the cube"]}])
    policy.save(tmp_path / "ckpt")
    saved = load_file(str(tmp_path / "ckpt" / "model.safetensors"))
    assert saved and not (set(saved) & model.frozen_keys)
    assert any("lora_" in k for k in saved)
    n_saved = sum(v.numel() for v in saved.values())
    assert n_saved < sum(p.numel() for p in model.parameters())

    loaded = VLAPolicy.load(tmp_path / "ckpt")
    np.testing.assert_array_equal(policy.act(images, "pick up the cube", proprio),
                                  loaded.act(images, "pick up the cube", proprio))


def test_missing_base_checkpoint_fails_clearly(tmp_path):
    config = VLAConfig(size="large", base_model_path=str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="not a local model directory"):
        checkpoint.build(config, None, ACTION_STATS, PROPRIO_STATS, (128, 128))
