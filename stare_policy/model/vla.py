"""The vision-language-action model: LLaVA backbone + proprio token + action tokens + value head.

Sequence per sample (prompts left-padded so that every sequence ends with its last prompt token; pads are
masked and skipped by the position ids):

    [image patches] [proprio] [pad ...] [<s> In: What action should the robot take to ...?\\nOut:] [a1 .. a7]

The 7 action tokens are decoded autoregressively with a KV cache. log pi(a|s) is the sum over the 7
dimensions of the log-softmax restricted to the `n_bins` action-token logits; the entropy is the mean of
the 7 categorical entropies; the value head reads the hidden state of the token just before the first
action token (RL4VLA). The same code runs the small and the large backbone.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers.cache_utils import DynamicCache

from stare_policy.model.backbone import Backbone
from stare_policy.model.config import VLAConfig


Temperature = float | tuple[float, ...]
"""One sampling temperature for every action token, or one per action dimension (D values)."""


def cache_keyword(language_model: nn.Module) -> str:
    """The name of the KV-cache argument: `cache` in recent transformers, `past_key_values` before. The
    wrong one would not fail: the model's **kwargs would swallow it, and every action token after the first
    would be decoded without the prefix."""
    return "cache" if "cache" in inspect.signature(language_model.forward).parameters else "past_key_values"


def per_dimension(temperature: Temperature, action_dim: int) -> tuple[float, ...]:
    """D temperatures from one or D; negative values are refused."""
    values = (float(temperature),) * action_dim if isinstance(temperature, (int, float)) else tuple(map(float, temperature))
    if len(values) != action_dim or any(t < 0 for t in values):
        raise ValueError(f"temperature must be >= 0 (one value, or one per action dimension: {action_dim}), "
                         f"got {temperature!r}")
    return values


WINDOW_FLOOR = -1e4
"""Scaled logit given to the bins outside a sampling window, relative to the largest: probability 0 in any
float type, while log pi of such a bin (a policy that moved since sampling) stays finite."""


def within_window(scaled: torch.Tensor, window: int | None, centre: torch.Tensor | None = None) -> torch.Tensor:
    """Temperature-scaled action logits (..., n_bins) restricted to `window` bins either side of `centre`
    (default: the greedy bin), so that no sampled token lands far from the greedy one, however the
    distribution's tail looks (benchmarks/sampling_spread.py). None: unrestricted."""
    if window is None:
        return scaled
    if centre is None:
        centre = scaled.argmax(-1)
    distance = (torch.arange(scaled.shape[-1], device=scaled.device) - centre.unsqueeze(-1)).abs()
    shifted = scaled - scaled.detach().amax(-1, keepdim=True)
    return shifted.masked_fill(distance > window, WINDOW_FLOOR)


def check_window(window: int | None) -> None:
    if window is not None and (isinstance(window, bool) or not isinstance(window, int) or window < 0):
        raise ValueError(f"sampling window must be a number of bins >= 0 or None, got {window!r}")


def action_temperature(temperature: float, gripper_temperature: float | None, action_dim: int = 7) -> Temperature:
    """`temperature` for the arm tokens and `gripper_temperature` for the last (gripper) token; None: the same.
    A gripper temperature of 0 samples the arm and takes the gripper greedily: one early sampled "close"
    ends a pick, so exploring it costs whole episodes (docs/training.md)."""
    if gripper_temperature is None or gripper_temperature == temperature:
        return temperature
    return (temperature,) * (action_dim - 1) + (gripper_temperature,)


@dataclass
class VLAInputs:
    """A batch the model reads; built by `VLAProcessor`."""

    images: torch.Tensor
    """(B, H, W, 3) uint8 RGB."""
    prompt_ids: torch.Tensor
    """(B, L) int64, left-padded."""
    prompt_mask: torch.Tensor
    """(B, L) bool, False on padding."""
    proprio: torch.Tensor | None
    """(B, P) float32, normalised; None when the model has no proprio input."""

    def to(self, device: torch.device | str) -> "VLAInputs":
        move = lambda t: None if t is None else t.to(device, non_blocking=True)  # noqa: E731
        return VLAInputs(move(self.images), move(self.prompt_ids), move(self.prompt_mask), move(self.proprio))


@dataclass
class ActionSample:
    bins: torch.Tensor
    """(B, D) int64 bin indices (token id minus the action-token offset)."""
    log_prob: torch.Tensor
    """(B,) sum over dimensions of log pi of each chosen bin."""
    value: torch.Tensor
    """(B,) value estimate of the state."""
    centres: torch.Tensor | None = None
    """(B, D) greedy bin of each dimension given the prefix it was sampled after: the windows' centres and,
    with a greedy prefix, the greedy action (None when neither is used)."""


class VLA(nn.Module):
    def __init__(self, config: VLAConfig, backbone: Backbone):
        super().__init__()
        self.config = config
        self.backbone = backbone.module
        self._llava = [backbone.llava]  # a list keeps it out of the module tree (it is inside `backbone`)
        self.frozen_keys = frozenset(f"backbone.{key}" for key in backbone.frozen_keys)
        llava = backbone.llava
        hidden = llava.config.text_config.hidden_size
        self.vocab_size = llava.config.text_config.vocab_size
        self.action_offset = self.vocab_size - config.n_bins
        self.image_size = llava.config.vision_config.image_size
        self.proprio_proj = nn.Linear(config.proprio_dim, hidden) if config.proprio_dim else None
        self.value_head = nn.Sequential(
            nn.Linear(hidden, config.value_hidden), nn.GELU(), nn.Linear(config.value_hidden, 1)
        )
        self.register_buffer("image_mean", torch.tensor(config.image_mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("image_std", torch.tensor(config.image_std).view(1, 3, 1, 1), persistent=False)
        # LLaVA reads the vision tower's hidden states, before the tower's final layer norm (CLIP's
        # `post_layernorm`, Swin's `layernorm`): that norm never sees a gradient, and data-parallel training
        # refuses parameters without one.
        for name in ("post_layernorm", "layernorm"):
            final_norm = getattr(llava.model.vision_tower, name, None)
            if isinstance(final_norm, nn.LayerNorm):
                final_norm.requires_grad_(False)
        # A convolutional tower's feature map has no position embedding of its own (see image_tokens).
        self.vision_position = None
        if config.size == "small" and config.vision_type == "resnet":
            tokens = (config.image_size // config.resnet_stride) ** 2
            self.vision_position = nn.Parameter(torch.zeros(1, tokens, config.vision_hidden))
            nn.init.normal_(self.vision_position, std=0.02)
        dtype = next(llava.parameters()).dtype
        for module in (self.proprio_proj, self.value_head):
            if module is not None:
                module.to(dtype)
        self._cache_keyword = cache_keyword(self.language_model)

    # -- pieces -------------------------------------------------------------------------------------------
    @property
    def llava(self):
        return self._llava[0]

    @property
    def language_model(self) -> nn.Module:
        return self.llava.model.language_model

    @property
    def dtype(self) -> torch.dtype:
        return self.llava.lm_head.weight.dtype

    def pixel_values(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (B, H, W, 3) -> normalised float (B, 3, S, S) at the vision tower's resolution."""
        x = images.permute(0, 3, 1, 2).float().div_(255.0)
        if x.shape[-2:] != (self.image_size, self.image_size):
            x = F.interpolate(x, size=(self.image_size, self.image_size), mode="bilinear", align_corners=False)
        return ((x - self.image_mean) / self.image_std).to(self.dtype)

    def image_tokens(self, images: torch.Tensor) -> torch.Tensor:
        if self.vision_position is not None:
            return self._conv_image_tokens(self.pixel_values(images))
        features = self.llava.model.get_image_features(pixel_values=self.pixel_values(images)).pooler_output
        return torch.stack(list(features)) if isinstance(features, (list, tuple)) else features

    def _conv_image_tokens(self, pixels: torch.Tensor) -> torch.Tensor:
        """ResNet tower: coordinate channels in, one token per cell of the last feature map (plus a learned
        position embedding) out, through LLaVA's projector."""
        if self.config.coord_channels:
            b, _, h, w = pixels.shape
            ys = torch.linspace(-1, 1, h, device=pixels.device, dtype=pixels.dtype).view(1, 1, h, 1).expand(b, 1, h, w)
            xs = torch.linspace(-1, 1, w, device=pixels.device, dtype=pixels.dtype).view(1, 1, 1, w).expand(b, 1, h, w)
            pixels = torch.cat([pixels, xs, ys], dim=1)
        features = self.llava.model.vision_tower(pixels).last_hidden_state  # (B, C, h, w)
        tokens = features.flatten(2).transpose(1, 2) + self.vision_position.to(features.dtype)
        return self.llava.model.multi_modal_projector(tokens)

    def embed_tokens(self, ids: torch.Tensor) -> torch.Tensor:
        return self.language_model.get_input_embeddings()(ids)

    def action_logits(self, hidden: torch.Tensor) -> torch.Tensor:
        """Logits of the action tokens only: (..., hidden) -> (..., n_bins), in float32."""
        logits = self.llava.lm_head(hidden)
        return logits[..., self.action_offset : self.action_offset + self.config.n_bins].float()

    def value(self, hidden: torch.Tensor) -> torch.Tensor:
        return self.value_head(hidden).squeeze(-1).float()

    def prefix(self, inputs: VLAInputs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Embeddings (B, T, d), attention mask (B, T) and position ids (B, T) of image+proprio+prompt."""
        image = self.image_tokens(inputs.images)
        parts = [image]
        if self.proprio_proj is not None:
            if inputs.proprio is None:
                raise ValueError("this model reads proprioception, but the inputs carry none")
            parts.append(self.proprio_proj(inputs.proprio.to(self.dtype)).unsqueeze(1))
        # Prompts are left-padded, so every sequence ends with its last prompt token; the pads sit between
        # the fixed-length prefix and the prompt, masked out and skipped by the position ids.
        embeds = torch.cat([*parts, self.embed_tokens(inputs.prompt_ids)], dim=1)
        n_fixed = embeds.shape[1] - inputs.prompt_ids.shape[1]
        mask = torch.cat([inputs.prompt_mask.new_ones(len(embeds), n_fixed), inputs.prompt_mask], dim=1)
        positions = (mask.long().cumsum(1) - 1).clamp_(min=0)
        return embeds, mask, positions

    def _run(self, embeds, mask, positions, cache=None) -> torch.Tensor:
        """The language model's last hidden states; `mask` None means no padding."""
        out = self.language_model(
            inputs_embeds=embeds,
            attention_mask=None if mask is None else mask.long(),
            position_ids=positions,
            use_cache=cache is not None,
            **{self._cache_keyword: cache},
        )
        return out.last_hidden_state

    # -- learning -------------------------------------------------------------------------------------------
    def forward(self, inputs: VLAInputs, bins: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Teacher-forced action logits (B, D, n_bins) and the hidden state before the first action token."""
        embeds, mask, positions = self.prefix(inputs)
        d = bins.shape[1]
        embeds = torch.cat([embeds, self.embed_tokens(bins[:, :-1] + self.action_offset)], dim=1)
        mask = torch.cat([mask, mask.new_ones(len(mask), d - 1)], dim=1)
        steps = torch.arange(1, d, device=positions.device)
        positions = torch.cat([positions, positions[:, -1:] + steps], dim=1)
        hidden = self._run(embeds, None if bool(mask.all()) else mask, positions)[:, -d:]
        return self.action_logits(hidden), hidden[:, 0]

    def evaluate_actions(
        self, inputs: VLAInputs, bins: torch.Tensor, temperature: Temperature = 1.0, window: int | None = None,
        centres: torch.Tensor | None = None, greedy_prefix: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """log pi(a|s) (B,), entropy (B,) and value (B,) of given action bins (B, D) as they were sampled: at
        the temperature(s), window and prefix of `sample`. `centres` (B, D) are the sample's
        (`ActionSample.centres`), so that the windows and the greedy prefix stay the sampling ones after the
        policy moves; None: this policy's greedy bins. Dimensions at temperature 0 were taken greedily, so
        they add nothing to either."""
        check_window(window)
        temps = torch.tensor(per_dimension(temperature, bins.shape[1]), device=bins.device)
        if greedy_prefix and centres is None:
            centres = self.sample(inputs, 0.0).bins
        logits, before_first = self.forward(inputs, centres if greedy_prefix else bins)
        scaled = within_window(logits / temps.clamp_min(1e-6)[:, None], window, centres)
        logp = F.log_softmax(scaled, dim=-1)
        sampled = (temps > 0).to(logp.dtype)
        log_prob = (logp.gather(-1, bins.unsqueeze(-1)).squeeze(-1) * sampled).sum(-1)
        entropy = (-(logp.exp() * logp).sum(-1) * sampled).sum(-1) / sampled.sum().clamp_min(1.0)
        return log_prob, entropy, self.value(before_first)

    # -- acting -----------------------------------------------------------------------------------------------
    @torch.no_grad()
    def sample(
        self, inputs: VLAInputs, temperature: Temperature = 0.0, generator: torch.Generator | None = None,
        window: int | None = None, greedy_prefix: bool = False,
    ) -> ActionSample:
        """Decode D action tokens with a KV cache; greedy where the temperature is 0, elsewhere sampled within
        `window` bins of the greedy one (None: anywhere).

        `greedy_prefix`: each token is sampled given the greedy tokens before it, not the sampled ones. A token
        sampled one bin off can change what the model makes of the next ones (a y hundreds of bins away, a
        gripper that closes): on StackCube at temperature 0.05, episodes sampled after sampled prefixes
        succeeded in 13 %, after greedy prefixes in 90 % (greedy decoding: 88 %; docs/training.md).

        The log-probability is taken under the sampling distribution (softmax of logits / temperature, within
        the window) of the sampled dimensions (greedy ones beside them add nothing, as in `evaluate_actions`),
        or under temperature 1 when every dimension is greedy.
        """
        check_window(window)
        padded = not bool(inputs.prompt_mask.all())
        return self.decode(inputs, DynamicCache(config=self.language_model.config), padded, temperature, generator,
                           window, greedy_prefix)

    def decode(
        self,
        inputs: VLAInputs,
        cache,
        padded: bool,
        temperature: Temperature = 0.0,
        generator: torch.Generator | None = None,
        window: int | None = None,
        greedy_prefix: bool = False,
    ) -> ActionSample:
        """`sample` with a given (empty) KV cache; `padded` says whether any prompt is padded (a Python bool,
        so that a compiled graph does not branch on tensor data: see `CompiledGreedy`)."""
        embeds, mask, positions = self.prefix(inputs)
        hidden = self._run(embeds, mask if padded else None, positions, cache)[:, -1]
        value = self.value(hidden)
        position = positions[:, -1:]
        bins, centres, log_prob = [], [], torch.zeros(len(hidden), device=hidden.device)
        temps = per_dimension(temperature, self.config.action_dim)
        all_greedy = not any(temps)
        for dim, t in enumerate(temps):
            logits = self.action_logits(hidden)
            centres.append(logits.argmax(-1))
            logp = F.log_softmax(within_window(logits / t, window, centres[-1]) if t > 0 else logits, dim=-1)
            if t > 0:
                choice = torch.multinomial(logp.exp(), 1, generator=generator).squeeze(-1)
            else:
                choice = centres[-1]
            if t > 0 or all_greedy:
                log_prob = log_prob + logp.gather(-1, choice.unsqueeze(-1)).squeeze(-1)
            bins.append(choice)
            if dim + 1 == self.config.action_dim:
                break
            mask = torch.cat([mask, mask.new_ones(len(mask), 1)], dim=1)
            position = position + 1
            fed = centres[-1] if greedy_prefix else choice
            token = self.embed_tokens(fed.unsqueeze(1) + self.action_offset)
            hidden = self._run(token, mask if padded else None, position, cache)[:, -1]
        return ActionSample(torch.stack(bins, dim=1), log_prob, value,
                            None if window is None and not greedy_prefix else torch.stack(centres, dim=1))
