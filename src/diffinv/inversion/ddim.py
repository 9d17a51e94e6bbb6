"""``ddim``: plain DDIM inversion (Song et al. 2021; as the baseline of Mokady et al. 2022, Sec. 3.1).

The latent is inverted with the conditional prediction (guidance 1); reconstruction uses the prompt as is. Exact at
guidance 1 up to the linearisation error, drifts at guidance 7.5 — which is what the optimising methods fix.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from diffinv.inversion.config import InversionConfig

if TYPE_CHECKING:
    from diffinv.inversion.base import Inversion, InversionProblem


@dataclass(frozen=True)
class DDIMInversion:
    name: str = "ddim"
    summary: str = "DDIM inversion (Song et al. 2021): nothing optimised; fast, drifts at high guidance"
    requires_prompt: bool = False

    config_class = InversionConfig

    @property
    def presets(self) -> Mapping[str, InversionConfig]:
        return {}

    def invert(self, problem: InversionProblem) -> list[Inversion]:
        trajectory = problem.ddim_trajectory()
        return problem.result(latents=trajectory[0], prompt_embeds=problem.prompt_embeds)


METHOD = DDIMInversion()
