"""Image and latent comparison metrics."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def psnr(image: Tensor, reference: Tensor, data_range: float = 1.0) -> float:
    """Peak signal-to-noise ratio in dB between two images of the same shape (``inf`` when identical)."""
    if image.shape != reference.shape:
        raise ValueError(f"shape mismatch: {tuple(image.shape)} vs {tuple(reference.shape)}")
    mse = torch.mean((image.double() - reference.double()) ** 2).item()
    return math.inf if mse == 0 else 10.0 * math.log10(data_range**2 / mse)


def latent_mse(latents: Tensor, reference: Tensor) -> float:
    """Mean squared error between two latents of the same shape."""
    if latents.shape != reference.shape:
        raise ValueError(f"shape mismatch: {tuple(latents.shape)} vs {tuple(reference.shape)}")
    return torch.mean((latents.double() - reference.double().to(latents.device)) ** 2).item()
