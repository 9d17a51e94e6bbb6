"""``prompt-tokens``: prompt-token inversion (the reference paper, ``shared/papers/prompt-token-inversion.ko.txt``,
Sec. III-B and Fig. 2).

Same objective and trajectory as null-text inversion, but the optimised variable is the semantic slice of the
*conditional* text embedding — BOS, the prompt's tokens and the first EOS (n positions, n·D·T parameters; ≤ 2.95M
for SD 1.x). Padding positions and the unconditional embedding are never touched, so a negative prompt still works
after inversion. ``InversionConfig.tokens`` selects the slice (``semantic`` / ``all`` / a count).
Default T = 25 (the paper's Table 1).
"""

from __future__ import annotations

from dataclasses import dataclass

from diffinv.inversion.base import Inversion, InversionConfig, InversionProblem
from diffinv.inversion.embedding_fit import fit_embeddings


@dataclass(frozen=True)
class PromptTokenInversion:
    name: str = "prompt-tokens"
    requires_prompt: bool = True

    @property
    def default_config(self) -> InversionConfig:
        return InversionConfig(num_inference_steps=25)

    def invert(self, problem: InversionProblem) -> Inversion:
        trajectory = problem.ddim_trajectory()
        n_positions = problem.config.token_count(problem.prompt)
        fit = fit_embeddings(problem, trajectory, slot="cond", n_positions=n_positions)
        return problem.result(
            latents=trajectory[0],
            prompt_embeds=fit.embeds,
            optimized_positions=n_positions,
            optimized_params=n_positions * fit.embeds.shape[-1] * fit.embeds.shape[0],
            inner_steps=fit.inner_steps,
            final_losses=fit.final_losses,
        )


METHOD = PromptTokenInversion()
