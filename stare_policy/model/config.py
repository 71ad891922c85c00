"""The VLA model's configuration: one dataclass for both sizes.

*small* builds a LLaVA-class model (ResNet, Swin or CLIP vision tower, projector, Llama language model)
from scratch with the fields below; *large* loads a LLaVA-family checkpoint from `base_model_path` (a local
directory; no hub) and fine-tunes it with LoRA. Everything after the backbone (action tokens, proprio
token, value head, decoding) is the same code for both.
"""

from __future__ import annotations

from dataclasses import dataclass

SIZES = ("small", "large")
VISION_TYPES = ("resnet", "swin", "clip")
DTYPES = ("float32", "bfloat16", "float16")
DEFAULT_PROMPT = "In: What action should the robot take to {instruction}?\nOut:"


@dataclass(frozen=True)
class VLAConfig:
    size: str = "small"
    """'small' (from scratch, CPU-trainable) or 'large' (local LLaVA-family checkpoint + LoRA)."""

    # -- small backbone, from scratch ---------------------------------------------------------------------
    # Sized for CPU: ~1.2 M parameters; the 64 image tokens dominate the language model's sequence.
    # The defaults are the shipped PickCube checkpoint's (checkpoints/pick-cube-sft, docs/results.md).
    vision_type: str = "resnet"
    """'resnet': a small convolutional tower (transformers' ResNet) with coordinate input channels and a
    learned position embedding per output token; convolutions learn from a few hundred demonstrations
    where a from-scratch transformer tower does not (measured in docs/results.md). 'swin': a hierarchical
    windowed-attention tower. 'clip': a plain ViT, LLaVA's own tower type."""
    image_size: int = 128
    """Side of the square image the vision tower sees (inputs are resized to it). Large: the checkpoint's."""
    patch_size: int = 8
    vision_hidden: int = 128
    """Width of the tower's output tokens (ResNet, Swin: of the last stage; each earlier stage is half as
    wide)."""
    vision_layers: int = 4
    """Transformer blocks of the tower (Swin: split evenly over `swin_stages`)."""
    vision_heads: int = 4
    """Attention heads (Swin: of the last stage; halved per earlier stage)."""
    vision_intermediate: int = 192
    """MLP width of the tower (Swin: as a ratio to each stage's width)."""
    swin_stages: int = 2
    """Swin stages; each after the first halves the token grid (128 px / 8 px patches / 2 = 8x8 tokens)."""
    swin_window: int = 4
    resnet_stages: int = 3
    """ResNet stages after the stride-4 stem; each after the first halves the grid (128 px -> 8x8 tokens);
    widths double per stage up to `vision_hidden`."""
    resnet_depth: int = 1
    """Residual blocks per ResNet stage."""
    coord_channels: bool = True
    """ResNet: append the pixel's x and y (in [-1, 1]) as two input channels (CoordConv), so features say
    where they are, not only what: BC from one fixed camera is mostly about *where* the object is."""
    text_hidden: int = 128
    text_layers: int = 3
    text_heads: int = 4
    text_intermediate: int = 384
    text_vocab_size: int = 512
    """Target size of the byte-level BPE tokenizer trained on the instruction templates (small only)."""
    tokenizer_phrases: bool = True
    """Let the small model's BPE merge across spaces, so a known prompt is a handful of tokens (small only)."""
    max_positions: int = 512

    # -- large backbone, from a local checkpoint -----------------------------------------------------------
    base_model_path: str | None = None
    """Directory of a LLaVA-family checkpoint (config.json, *.safetensors, tokenizer); large only."""
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    lora_target_modules: str = r".*language_model.*\.(q_proj|k_proj|v_proj|o_proj|gate_proj|up_proj|down_proj)"
    """Regex over module names that get LoRA adapters (default: the language model's projections)."""
    modules_to_save: tuple[str, ...] = ("multi_modal_projector", "lm_head")
    """Modules trained in full beside the adapters (lm_head carries the action-token logits)."""
    train_action_embeddings: bool = True
    """Train the input embeddings of the 256 action tokens (peft trainable_token_indices)."""
    dtype: str = "float32"

    # -- shared ----------------------------------------------------------------------------------------------
    n_bins: int = 256
    action_dim: int = 7
    gripper_dims: tuple[int, ...] = (6,)
    """Action dimensions left unnormalised (already in [-1, 1]): the gripper."""
    proprio_keys: tuple[str, ...] = ("qpos", "tcp_pose")
    """Proprioceptive inputs, concatenated in this order and embedded as one token; () for none."""
    proprio_dims: tuple[int, ...] = (9, 7)
    prompt: str = DEFAULT_PROMPT
    """OpenVLA's prompt; `{instruction}` is replaced by the task instruction."""
    image_mean: tuple[float, float, float] = (0.48145466, 0.4578275, 0.40821073)
    image_std: tuple[float, float, float] = (0.26862954, 0.26130258, 0.27577711)
    value_hidden: int = 128
    """Width of the value head's MLP (on the hidden state before the first action token)."""
    dropout: float = 0.0
    """Attention dropout of the small model's vision tower and language model."""

    def __post_init__(self) -> None:
        if self.size not in SIZES:
            raise ValueError(f"size must be one of {SIZES}, got {self.size!r}")
        if self.size == "large" and not self.base_model_path:
            raise ValueError("size 'large' needs base_model_path (a local LLaVA-family checkpoint directory)")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype must be one of {DTYPES}, got {self.dtype!r}")
        if self.n_bins < 2 or self.action_dim < 1:
            raise ValueError("n_bins must be >= 2 and action_dim >= 1")
        if any(not 0 <= d < self.action_dim for d in self.gripper_dims):
            raise ValueError(f"gripper_dims {self.gripper_dims} out of range for action_dim {self.action_dim}")
        if len(self.proprio_keys) != len(self.proprio_dims):
            raise ValueError("proprio_keys and proprio_dims must have the same length")
        if self.vision_type not in VISION_TYPES:
            raise ValueError(f"vision_type must be one of {VISION_TYPES}, got {self.vision_type!r}")
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if self.vision_type == "resnet":
            if self.resnet_stages < 1 or self.resnet_depth < 1 or self.image_size % self.resnet_stride:
                raise ValueError("resnet: needs >= 1 stage and block, and image_size divisible by "
                                 f"{self.resnet_stride}")
            if self.vision_hidden % 2 ** (self.resnet_stages - 1):
                raise ValueError("resnet: vision_hidden must be divisible by 2 ** (resnet_stages - 1)")
        if self.vision_type == "swin":
            shrink = 2 ** (self.swin_stages - 1)
            if self.swin_stages < 1 or self.vision_layers < self.swin_stages:
                raise ValueError("swin needs at least one stage and one layer per stage")
            if self.vision_hidden % shrink or (self.image_size // self.patch_size) % (self.swin_window * shrink):
                raise ValueError(f"swin: vision_hidden and the patch grid must be divisible by the stage "
                                 f"halvings ({shrink}), and the grid by the window ({self.swin_window})")
        if "{instruction}" not in self.prompt:
            raise ValueError("prompt must contain '{instruction}'")

    @property
    def resnet_stride(self) -> int:
        """Pixels per ResNet output token: a stride-4 stem, then each stage after the first halves the grid
        (3 stages: 16 px, so 128 px images give 8 x 8 tokens)."""
        return 4 * 2 ** (self.resnet_stages - 1)

    @property
    def proprio_dim(self) -> int:
        return sum(self.proprio_dims)
