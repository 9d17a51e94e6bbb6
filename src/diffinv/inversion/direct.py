"""``direct``: DirectInversion (Ju et al. 2023, "Direct Inversion: Boosting Diffusion-based Editing with 3 Lines
of Code", Alg. 1).

Runs the guided DDIM sampler from x*_T and, after every step, stores the difference between the DDIM-trajectory
latent x*_{i+1} and where the guided step landed; reconstruction adds those differences back, so it returns the
source latent exactly (up to floating-point rounding). The unconditional slot stays free.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from diffinv.inversion.config import InversionConfig

if TYPE_CHECKING:
    from diffinv.inversion.base import Inversion, InversionProblem


@dataclass(frozen=True)
class DirectInversion:
    name: str = "direct"
    summary: str = "DirectInversion (Ju et al. 2023): per-step latent corrections; exact, a negative prompt still works"
    requires_prompt: bool = False

    config_class = InversionConfig

    @property
    def presets(self) -> Mapping[str, InversionConfig]:
        return {}

    def invert(self, problem: InversionProblem) -> list[Inversion]:
        trajectory = problem.ddim_trajectory()
        offsets = problem.direct_offsets(trajectory)
        return problem.result(latents=trajectory[0], prompt_embeds=problem.prompt_embeds, latent_offsets=offsets)


METHOD = DirectInversion()
