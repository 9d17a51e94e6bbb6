"""The guided DDIM sampling loop used for reconstruction, generation, editing and SDEdit.

One loop for every caller: it runs any contiguous range of a :class:`~diffinv.denoiser.Denoiser`'s steps on a
batch of latents, with per-step or shared embeddings, and an optional ``callback`` after each step through which
editors change the latents (local blending, masked SDEdit) without copying the loop.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor
from tqdm.auto import tqdm

from diffinv.denoiser import Denoiser, noise_like

StepCallback = Callable[[int, Tensor], Tensor]
"""``callback(i, latents) -> latents``, called after denoising step ``i`` (and its latent offset)."""


def _at_step(embeds: Tensor, i: int) -> Tensor:
    """Step ``i``'s ``(B, L, D)`` from per-step ``(T, B, L, D)``, shared ``(1, B, L, D)`` or shared ``(B, L, D)``."""
    if embeds.ndim == 3:
        return embeds
    return embeds[i if embeds.shape[0] > 1 else 0]


@torch.no_grad()
def denoise(
    denoiser: Denoiser,
    latents: Tensor,
    prompt_embeds: Tensor,
    negative_prompt_embeds: Tensor,
    guidance_scale: float,
    *,
    latent_offsets: Tensor | None = None,
    start_step: int = 0,
    callback: StepCallback | None = None,
    eta: float = 0.0,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> Tensor:
    """Guided DDIM sampling (DDIM Eq. 12: deterministic at η = 0; guidance as Ho & Salimans 2022 Eq. 6).

    Args:
        denoiser: the UNet and its T-step schedule.
        latents: ``(B, C, h, w)`` the latent at the start of step ``start_step`` (x_T when it is 0).
        prompt_embeds / negative_prompt_embeds: ``(B, L, D)`` shared by every step, or ``(T, B, L, D)`` one per
            step (``(1, B, L, D)`` is shared too).
        guidance_scale: classifier-free guidance weight w.
        latent_offsets: ``(T, C, h, w)`` or ``(T, B, C, h, w)`` added after each step (DirectInversion), or ``None``.
        start_step: first step to run (SDEdit starts part-way down the schedule); steps ``start_step .. T-1`` run.
        callback: ``callback(i, latents) -> latents`` after each step, e.g. to blend in a masked source.
        eta: DDIM's η (0: deterministic; 1: DDPM's ancestral sampler); the noise of each step is drawn from
            ``generator`` on its own device (:func:`diffinv.denoiser.noise_like`).

    Returns:
        ``(B, C, h, w)`` the final latent.
    """
    dtype = denoiser.compute_dtype
    latent = latents.to(denoiser.device, dtype)
    steps = range(start_step, len(denoiser.schedule))
    for i in tqdm(steps, disable=not progress, desc="sampling", leave=False):
        cond = _at_step(prompt_embeds, i).to(latent)
        uncond = _at_step(negative_prompt_embeds, i).to(latent)
        epsilon = denoiser.guided_epsilon(latent, i, cond, uncond, guidance_scale)
        noise = None
        if eta:
            noise = noise_like(latent, generator)
        latent = denoiser.step(latent, epsilon, i, eta=eta, noise=noise)
        if latent_offsets is not None:
            latent = latent + latent_offsets[i].to(latent)
        if callback is not None:
            latent = callback(i, latent)
    return latent
