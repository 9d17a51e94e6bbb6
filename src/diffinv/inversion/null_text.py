"""``null-text``: Null-text inversion (Mokady et al. 2022, "Null-text Inversion for Editing Real Images using
Guided Diffusion Models", Alg. 1).

Optimises the whole unconditional embedding ∅_t ``(1, L, D)`` at each of the T steps (L·D·T parameters; 2.95M for
SD 1.x at T = 50; on SDXL both encoders' halves and the pooled embedding). The unconditional slot is then
occupied: a negative prompt cannot be used afterwards. Defaults: the paper's (:class:`OptimizingInversionConfig`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from diffinv.inversion.config import OptimizingInversionConfig

if TYPE_CHECKING:
    from diffinv.inversion.base import Inversion, InversionProblem


@dataclass(frozen=True)
class NullTextInversion:
    name: str = "null-text"
    summary: str = (
        "Null-text inversion (Mokady et al. 2022): the unconditional embedding optimised per step; "
        "no negative prompt afterwards"
    )
    requires_prompt: bool = False

    config_class = OptimizingInversionConfig

    @property
    def presets(self) -> Mapping[str, OptimizingInversionConfig]:
        """``paper``: Mokady et al.'s setting, which is also the default."""
        return {"paper": OptimizingInversionConfig()}

    def invert(self, problem: InversionProblem) -> list[Inversion]:
        trajectory = problem.ddim_trajectory()
        free = problem.free_rows([prompt.max_length for prompt in problem.prompts], pooled=True)  # every row
        fit = problem.fit_embeddings(trajectory, slot="uncond", free=free)
        return problem.result(
            latents=trajectory[0], prompt_embeds=problem.prompt_embeds, negative_prompt_embeds=fit.embeds, fit=fit
        )


METHOD = NullTextInversion()
