"""The guided DDIM sampling loop used for reconstruction and generation."""

from __future__ import annotations

import torch
from torch import Tensor
from tqdm.auto import tqdm

from diffinv.denoiser import Denoiser


def _at_step(embeds: Tensor, i: int) -> Tensor:
    """Row ``i`` of per-step embeddings ``(T, L, D)``, or the shared row of ``(1, L, D)``; returns ``(1, L, D)``."""
    return embeds[i if embeds.shape[0] > 1 else 0].unsqueeze(0)


@torch.no_grad()
def denoise(
    denoiser: Denoiser,
    latents: Tensor,
    prompt_embeds: Tensor,
    negative_prompt_embeds: Tensor,
    guidance_scale: float,
    *,
    latent_offsets: Tensor | None = None,
    progress: bool = False,
) -> Tensor:
    """Deterministic guided DDIM sampling (DDIM Eq. 12, σ = 0; guidance as Ho & Salimans 2022 Eq. 6).

    Args:
        denoiser: the UNet and its T-step schedule.
        latents: ``(1, C, h, w)`` starting latent x_T, compute dtype.
        prompt_embeds / negative_prompt_embeds: ``(1, L, D)`` shared, or ``(T, L, D)`` one per step.
        guidance_scale: classifier-free guidance weight w.
        latent_offsets: ``(T, C, h, w)`` added after each step (DirectInversion), or ``None``.

    Returns:
        ``(1, C, h, w)`` the final latent.
    """
    dtype = denoiser.compute_dtype
    latent = latents.to(denoiser.device, dtype)
    for i in tqdm(range(len(denoiser.schedule)), disable=not progress, desc="sampling", leave=False):
        cond = _at_step(prompt_embeds, i).to(latent)
        uncond = _at_step(negative_prompt_embeds, i).to(latent)
        latent = denoiser.step(latent, denoiser.guided_epsilon(latent, i, cond, uncond, guidance_scale), i)
        if latent_offsets is not None:
            latent = latent + latent_offsets[i].unsqueeze(0).to(latent)
    return latent
