"""DDIM inversion trajectory shared by the methods built on it (Mokady et al. 2022, Sec. 3.1: "pivot"), and
DirectInversion's corrections toward it."""

from __future__ import annotations

import torch
from torch import Tensor
from tqdm.auto import tqdm

from diffinv.denoiser import Denoiser


@torch.no_grad()
def ddim_trajectory(
    denoiser: Denoiser, source_latents: Tensor, prompt_embeds: Tensor, *, progress: bool = False
) -> list[Tensor]:
    """Run DDIM inversion with the conditional prediction only (guidance 1).

    Args:
        denoiser: the UNet and its T-step schedule.
        source_latents: ``(B, C, h, w)`` the photos' latents z_0.
        prompt_embeds: ``(B, L, D)`` conditional embeddings.

    Returns:
        ``T + 1`` latents: element ``i`` is the latent at the start of denoising step ``i`` (so element 0 is the
        noisiest, x_T) and element ``T`` is ``source_latents``.
    """
    latent = source_latents
    reversed_path = [latent]
    for i in tqdm(
        reversed(range(len(denoiser.schedule))),
        total=len(denoiser.schedule),
        disable=not progress,
        desc="DDIM inversion",
        leave=False,
    ):
        latent = denoiser.inverse_step(latent, denoiser.epsilon(latent, i, prompt_embeds), i)
        reversed_path.append(latent)
    return reversed_path[::-1]


@torch.no_grad()
def direct_offsets(
    denoiser: Denoiser,
    trajectory: list[Tensor],
    prompt_embeds: Tensor,
    null_embeds: Tensor,
    guidance_scale: float,
    *,
    progress: bool = False,
) -> Tensor:
    """DirectInversion (Ju et al. 2023, Alg. 1): run the guided sampler from ``trajectory[0]`` and, after every step,
    keep the difference between the trajectory latent x*_{i+1} and where the guided step landed, then continue from
    x*_{i+1}.

    Returns:
        ``(T, B, C, h, w)`` offsets; adding offset ``i`` after guided step ``i`` reproduces the trajectory.
    """
    latent, offsets = trajectory[0], []
    for i in tqdm(range(len(denoiser.schedule)), disable=not progress, desc="direct", leave=False):
        eps = denoiser.guided_epsilon(latent, i, prompt_embeds, null_embeds, guidance_scale)
        stepped = denoiser.step(latent, eps, i)
        offsets.append(trajectory[i + 1] - stepped)
        latent = stepped + offsets[-1]
    return torch.stack(offsets)
