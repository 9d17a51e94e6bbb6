"""Random degradations of the probe's training renders (:mod:`diffinv.train.probe`): JPEG, small shifts, colour
jitter, down- and up-sampling, Gaussian blur and Gaussian noise, so that the probe also reads the blurrier,
noisier images a diffusion model generates."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from diffinv.config import Config


@dataclass(frozen=True)
class AugmentConfig(Config):
    """Random degradations of the training renders (each applied to an image with its probability)."""

    jpeg_prob: float = 0.2
    jpeg_quality: tuple[int, int] = (40, 95)
    """Range of the JPEG quality."""
    shift_prob: float = 0.3
    max_shift: int = 2
    """Largest translation in pixels (edges replicated)."""
    color_prob: float = 0.8
    brightness: float = 0.08
    """Largest relative change of the brightness (a gain shared by the channels)."""
    channel_gain: float = 0.05
    """Largest relative change of each channel's gain."""
    channel_offset: float = 0.03
    """Largest offset added to each channel (image range ``[0, 1]``)."""
    contrast: float = 0.1
    """Largest relative change of the contrast around the image mean."""
    resample_prob: float = 0.1
    resample_scale: tuple[float, float] = (0.6, 0.85)
    """Range of the factor of the down-sampling before up-sampling back (bilinear)."""
    blur_prob: float = 0.4
    blur_sigma: tuple[float, float] = (0.3, 1.2)
    """Range of the standard deviation (pixels) of the Gaussian blur."""
    noise_prob: float = 0.5
    noise_std: tuple[float, float] = (0.0, 0.08)
    """Range of the standard deviation of the additive Gaussian noise (image range ``[0, 1]``)."""


def jpeg(image: np.ndarray, quality: int) -> np.ndarray:
    """``image`` (uint8 ``(S, S, 3)``) after a round trip through JPEG at ``quality``."""
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=quality)
    buffer.seek(0)
    return np.asarray(Image.open(buffer).convert("RGB"))


def gaussian_blur(images: Tensor, sigma: Tensor, truncate: float = 3.0) -> Tensor:
    """Blur every image with its own isotropic Gaussian (edges replicated).

    Args:
        images: ``(B, C, H, W)`` float.
        sigma: ``(B,)`` standard deviations in pixels; ``0`` leaves an image unchanged.
        truncate: The kernel extends over this many standard deviations.

    Returns:
        ``(B, C, H, W)``.
    """
    batch, channels, height, width = images.shape
    radius = max(1, math.ceil(truncate * float(sigma.max())))
    offsets = torch.arange(-radius, radius + 1, dtype=images.dtype)
    safe = sigma.to(images.dtype).clamp_min(1e-6)[:, None]
    kernel = torch.exp(-0.5 * (offsets[None, :] / safe) ** 2)
    kernel = kernel / kernel.sum(dim=1, keepdim=True)  # (B, K); a delta where sigma is ~0
    kernel = kernel.repeat_interleave(channels, dim=0)  # (B*C, K)
    x = F.pad(images.reshape(1, batch * channels, height, width), (radius,) * 4, mode="replicate")
    x = F.conv2d(x, kernel[:, None, None, :], groups=batch * channels)
    x = F.conv2d(x, kernel[:, None, :, None], groups=batch * channels)
    return x.reshape(batch, channels, height, width)


def augment(images: Tensor, config: AugmentConfig, generator: torch.Generator) -> Tensor:
    """Random degradations of a batch: shift, colour jitter, down/up-sampling, blur, noise.

    Args:
        images: ``(B, 3, S, S)`` float in ``[0, 1]``.
        config: Probabilities and strengths.
        generator: Source of all randomness.

    Returns:
        ``(B, 3, S, S)`` float in ``[0, 1]``.
    """
    batch, _, size, _ = images.shape

    def chance(p: float) -> Tensor:
        return torch.rand(batch, generator=generator) < p

    def uniform(low: float, high: float, *shape: int) -> Tensor:
        return low + (high - low) * torch.rand(batch, *shape, generator=generator)

    x = images.clone()
    m = config.max_shift
    shifts = torch.randint(-m, m + 1, (batch, 2), generator=generator)
    padded = F.pad(x, (m, m, m, m), mode="replicate")
    for i in torch.nonzero(chance(config.shift_prob)).flatten().tolist():
        dy, dx = shifts[i].tolist()
        x[i] = padded[i, :, m + dy : m + dy + size, m + dx : m + dx + size]

    color = chance(config.color_prob)[:, None, None, None]
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    contrast = uniform(1 - config.contrast, 1 + config.contrast)[:, None, None, None]
    gain = uniform(1 - config.brightness, 1 + config.brightness)[:, None, None, None]
    gain = gain * uniform(1 - config.channel_gain, 1 + config.channel_gain, 3)[:, :, None, None]
    offset = uniform(-config.channel_offset, config.channel_offset, 3)[:, :, None, None]
    jittered = (mean + (x - mean) * contrast) * gain + offset
    x = torch.where(color, jittered, x)

    scales = uniform(*config.resample_scale)
    for i in torch.nonzero(chance(config.resample_prob)).flatten().tolist():
        small = max(1, round(size * float(scales[i])))
        down = F.interpolate(x[i : i + 1], size=(small, small), mode="bilinear", antialias=True, align_corners=False)
        x[i] = F.interpolate(down, size=(size, size), mode="bilinear", align_corners=False)[0]

    sigma = uniform(*config.blur_sigma) * chance(config.blur_prob)
    if bool((sigma > 0).any()):
        x = gaussian_blur(x, sigma)

    std = uniform(*config.noise_std) * chance(config.noise_prob)
    x = x + std[:, None, None, None] * torch.randn(x.shape, generator=generator)
    return x.clamp(0.0, 1.0)


__all__ = ["AugmentConfig", "augment", "gaussian_blur", "jpeg"]
