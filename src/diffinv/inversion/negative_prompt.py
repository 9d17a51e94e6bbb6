"""``negative-prompt``: negative-prompt inversion (Miyake et al. 2023, "Negative-prompt Inversion: Fast Image
Inversion for Editing with Text-guided Diffusion Models", Sec. 3).

No optimisation: the source prompt's embedding replaces the null embedding (∅_t := C), which makes the guided
prediction equal the conditional one, so reconstruction retraces the DDIM inversion. The unconditional slot is
occupied by the prompt, so a user's negative prompt cannot be used afterwards.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from diffinv.inversion.config import InversionConfig

if TYPE_CHECKING:
    from diffinv.inversion.base import Inversion, InversionProblem


@dataclass(frozen=True)
class NegativePromptInversion:
    name: str = "negative-prompt"
    summary: str = (
        "Negative-prompt inversion (Miyake et al. 2023): the prompt fills the unconditional slot; "
        "fastest, no negative prompt afterwards"
    )
    requires_prompt: bool = True

    config_class = InversionConfig

    @property
    def presets(self) -> Mapping[str, InversionConfig]:
        return {}

    def invert(self, problem: InversionProblem) -> list[Inversion]:
        trajectory = problem.ddim_trajectory()
        return problem.result(
            latents=trajectory[0],
            prompt_embeds=problem.prompt_embeds,
            negative_prompt_embeds=problem.prompt_embeds,
        )


METHOD = NegativePromptInversion()
