"""``direct``: DirectInversion (Ju et al. 2023, "Direct Inversion: Boosting Diffusion-based Editing with 3 Lines
of Code", Alg. 1).

Runs the guided DDIM sampler from x*_T and, after every step, stores the difference between the DDIM-trajectory
latent x*_{i+1} and where the guided step landed; reconstruction adds those differences back, so it returns the
source latent exactly (up to floating-point rounding). The unconditional slot stays free.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from tqdm.auto import tqdm

from diffinv.inversion.base import Inversion, InversionConfig, InversionProblem


@dataclass(frozen=True)
class DirectInversion:
    name: str = "direct"
    requires_prompt: bool = False

    @property
    def default_config(self) -> InversionConfig:
        return InversionConfig(num_inference_steps=50)

    @property
    def presets(self) -> Mapping[str, InversionConfig]:
        return {}

    @torch.no_grad()
    def invert(self, problem: InversionProblem) -> Inversion:
        denoiser = problem.denoiser
        trajectory = problem.ddim_trajectory()
        latent, offsets = trajectory[0], []
        for i in tqdm(range(len(denoiser.schedule)), disable=not problem.progress, desc="direct", leave=False):
            eps = denoiser.guided_epsilon(
                latent, i, problem.prompt_embeds, problem.null_embeds, problem.config.guidance_scale
            )
            stepped = denoiser.step(latent, eps, i)
            offsets.append(trajectory[i + 1] - stepped)
            latent = stepped + offsets[-1]
        return problem.result(
            latents=trajectory[0], prompt_embeds=problem.prompt_embeds, latent_offsets=torch.cat(offsets)
        )


METHOD = DirectInversion()
