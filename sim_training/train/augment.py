"""Image augmentation for imitation from few demonstrations: random shift and colour jitter.

Random shift (pad with edge pixels, crop back at a random offset; DrQ) is the augmentation that matters
most for behaviour cloning from pixels; a small brightness/contrast jitter adds robustness to lighting.
Both work on uint8 (B, H, W, 3) batches and return the same.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class AugmentConfig:
    shift: int = 6
    """Maximum translation in pixels (0 disables)."""
    brightness: float = 0.1
    """Brightness is scaled by a factor in [1 - b, 1 + b] (0 disables)."""
    contrast: float = 0.1
    """Contrast around the image mean is scaled by a factor in [1 - c, 1 + c] (0 disables)."""


def augment(images: torch.Tensor, config: AugmentConfig, generator: torch.Generator | None = None) -> torch.Tensor:
    if not (config.shift or config.brightness or config.contrast):
        return images
    b, h, w, _ = images.shape
    x = images.permute(0, 3, 1, 2).float()
    if config.shift:
        s = config.shift
        padded = F.pad(x, (s, s, s, s), mode="replicate")
        dy, dx = (torch.randint(0, 2 * s + 1, (b,), generator=generator) for _ in range(2))
        x = torch.stack([padded[i, :, dy[i] : dy[i] + h, dx[i] : dx[i] + w] for i in range(b)])
    if config.brightness:
        x = x * (1 + config.brightness * (2 * torch.rand(b, 1, 1, 1, generator=generator) - 1))
    if config.contrast:
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = (x - mean) * (1 + config.contrast * (2 * torch.rand(b, 1, 1, 1, generator=generator) - 1)) + mean
    return x.clamp_(0, 255).round_().to(torch.uint8).permute(0, 2, 3, 1).contiguous()
