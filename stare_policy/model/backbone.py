"""The LLaVA-class backbone in two sizes: built from scratch (small) or loaded locally + LoRA (large).

Both return a `LlavaForConditionalGeneration` (the large one wrapped by peft), so everything downstream
(image features, embeddings, language model, lm_head) is one code path. `frozen_keys` names the
state-dict entries that come from the base checkpoint and are therefore not saved with a STARE checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import (
    CLIPVisionConfig,
    LlamaConfig,
    LlavaConfig,
    LlavaForConditionalGeneration,
    ResNetConfig,
    SwinConfig,
)

from stare_policy.model.config import VLAConfig


@dataclass
class Backbone:
    module: nn.Module
    """The LLaVA model (peft-wrapped for 'large')."""
    llava: LlavaForConditionalGeneration
    """The unwrapped LLaVA model whose submodules (LoRA layers in place) the VLA calls."""
    frozen_keys: frozenset[str]
    """State-dict keys (relative to `module`) of frozen base weights; empty for 'small'."""


def small_llava_config(config: VLAConfig, vocab_size: int) -> LlavaConfig:
    """A from-scratch LLaVA config whose vocabulary is the text tokenizer's plus the action tokens."""
    if config.vision_type == "resnet":
        stages = config.resnet_stages
        widths = [config.vision_hidden // 2 ** (stages - 1 - i) for i in range(stages)]
        vision = ResNetConfig(
            num_channels=3 + 2 * config.coord_channels,
            embedding_size=widths[0],
            hidden_sizes=widths,
            depths=[config.resnet_depth] * stages,
            layer_type="basic",
            downsample_in_first_stage=False,
        )
        # What LLaVA reads to size its projector, and what the VLA resizes images to.
        vision.hidden_size, vision.image_size = widths[-1], config.image_size
    elif config.vision_type == "swin":
        stages = config.swin_stages
        depths = [config.vision_layers // stages + (i < config.vision_layers % stages) for i in range(stages)]
        vision = SwinConfig(
            image_size=config.image_size,
            patch_size=config.patch_size,
            embed_dim=config.vision_hidden // 2 ** (stages - 1),
            depths=depths,
            num_heads=[max(1, config.vision_heads // 2 ** (stages - 1 - i)) for i in range(stages)],
            window_size=config.swin_window,
            mlp_ratio=config.vision_intermediate / config.vision_hidden,
            attention_probs_dropout_prob=config.dropout,
        )
    else:
        vision = CLIPVisionConfig(
            hidden_size=config.vision_hidden,
            intermediate_size=config.vision_intermediate,
            num_hidden_layers=config.vision_layers,
            num_attention_heads=config.vision_heads,
            image_size=config.image_size,
            patch_size=config.patch_size,
            attention_dropout=config.dropout,
        )
    text = LlamaConfig(
        hidden_size=config.text_hidden,
        intermediate_size=config.text_intermediate,
        num_hidden_layers=config.text_layers,
        num_attention_heads=config.text_heads,
        num_key_value_heads=config.text_heads,
        vocab_size=vocab_size,
        max_position_embeddings=config.max_positions,
        attention_dropout=config.dropout,
        tie_word_embeddings=False,
    )
    # Every token of the last layer (CLIP's CLS included): a from-scratch tower has no reason to skip one.
    return LlavaConfig(
        vision_config=vision,
        text_config=text,
        vision_feature_layer=-1,
        vision_feature_select_strategy="full",
        image_token_index=0,
        tie_word_embeddings=False,
    )


def build_small(llava_config: LlavaConfig) -> Backbone:
    model = LlavaForConditionalGeneration(llava_config)
    return Backbone(model, model, frozenset())


def load_large(config: VLAConfig, n_bins: int) -> Backbone:
    """The local LLaVA-family checkpoint at `config.base_model_path`, frozen, with LoRA adapters."""
    from peft import LoraConfig, get_peft_model

    path = Path(config.base_model_path or "")
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"base_model_path {path} is not a local model directory (no config.json)")
    llava = LlavaForConditionalGeneration.from_pretrained(
        str(path), local_files_only=True, use_safetensors=True, dtype=getattr(torch, config.dtype)
    )
    vocab = llava.config.text_config.vocab_size
    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=config.lora_target_modules,
        modules_to_save=list(config.modules_to_save) or None,
        # OpenVLA overwrites the last n_bins (least used) token ids with the action tokens.
        trainable_token_indices=(
            {"embed_tokens": list(range(vocab - n_bins, vocab))} if config.train_action_embeddings else None
        ),
    )
    module = get_peft_model(llava, lora)
    trainable = {name for name, p in module.named_parameters() if p.requires_grad}
    frozen = frozenset(set(module.state_dict()) - trainable)
    return Backbone(module, module.get_base_model(), frozen)
