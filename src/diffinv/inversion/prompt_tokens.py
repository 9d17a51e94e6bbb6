"""``prompt-tokens``: prompt-token inversion (the reference paper, ``shared/papers/prompt-token-inversion.ko.txt``,
Sec. III-B and Fig. 2).

Same objective and trajectory as null-text inversion, but the optimised variable is the semantic slice of the
*conditional* text embedding — BOS, the prompt's tokens and the first EOS (n positions, n·D·T parameters; ≤ 2.95M
for SD 1.x). Padding positions and the unconditional embedding are never touched, so a negative prompt still works
after inversion. :attr:`PromptTokensConfig.tokens` selects the slice (``semantic`` / ``all`` / a count).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from diffinv.config import setting
from diffinv.errors import DiffinvError
from diffinv.inversion.config import InversionConfig, OptimizationConfig, OptimizingInversionConfig, default_of

if TYPE_CHECKING:
    from diffinv.inversion.base import Inversion, InversionProblem
    from diffinv.text import EncodedPrompt

TOKEN_SLICES = ("semantic", "all")


@dataclass(frozen=True)
class PromptTokensConfig(OptimizingInversionConfig):
    """Settings of ``prompt-tokens``.

    Defaults: 25 steps (the reference paper's Table 1), its semantic slice, and Adam's learning rate at 0.1 instead
    of Mokady et al.'s 1e-2. Adam moves every coordinate by about the learning rate per iteration, whatever its
    gradient's scale, and the semantic slice is only a few of the 77 positions, so at 1e-2 the fit stops far from the
    target within its 10 inner iterations; at 0.1 it reaches null-text's reconstruction error or better (measured in
    ``docs/results.md``, "Ablations of prompt-token inversion"). On SDXL the conditional pooled embedding is
    optimised too, which the paper (token positions only) does not do: measured in ``docs/results.md``, "SDXL: pooled
    embedding optimised or kept?". The paper's own setting is the ``paper`` preset.
    """

    num_inference_steps: int = default_of(InversionConfig, "num_inference_steps", 25)
    optimization: OptimizationConfig = default_of(
        OptimizingInversionConfig, "optimization", OptimizationConfig(learning_rate=0.1)
    )
    tokens: str = setting(
        "semantic",
        "positions of the conditional embedding optimised: 'semantic' (BOS + the prompt's tokens + the first EOS), "
        "'all', or the first N",
    )
    pooled: bool = setting(True, "on SDXL, optimise the conditional pooled text embedding too (no effect elsewhere)")

    def __post_init__(self) -> None:
        super().__post_init__()
        tokens = self.tokens
        if not isinstance(tokens, str) or (tokens not in TOKEN_SLICES and not (tokens.isdigit() and int(tokens) > 0)):
            raise DiffinvError(f"tokens must be 'semantic', 'all' or a positive count, got {tokens!r}")
        if not isinstance(self.pooled, bool):
            raise DiffinvError(f"pooled must be true or false, got {self.pooled!r}")

    def token_count(self, prompt: EncodedPrompt) -> int:
        """Number of leading positions of the conditional embedding that are optimised for ``prompt``."""
        if self.tokens == "semantic":
            return prompt.n_tokens
        if self.tokens == "all":
            return prompt.max_length
        count = int(self.tokens)
        if count > prompt.max_length:
            raise DiffinvError(f"tokens={count} exceeds the text encoder's {prompt.max_length} positions")
        return count


@dataclass(frozen=True)
class PromptTokenInversion:
    name: str = "prompt-tokens"
    summary: str = (
        "Prompt-token inversion: the caption's tokens optimised per step; the negative-prompt slot stays free"
    )
    requires_prompt: bool = True

    config_class = PromptTokensConfig

    @property
    def presets(self) -> Mapping[str, PromptTokensConfig]:
        """``paper``: the reference paper's Table 1 setting (25 steps, the semantic slice, Mokady et al.'s optimiser;
        on SDXL the pooled embedding is kept, as the paper optimises token positions only).

        ``fast``: 12 steps, otherwise the default: cheaper, as exact on Shapes scenes but less so on photos (measured
        side by side in ``docs/results.md``, "A cheaper prompt-token inversion?"), hence not the default.
        """
        return {
            "paper": PromptTokensConfig(optimization=OptimizationConfig(), pooled=False),
            "fast": PromptTokensConfig(num_inference_steps=12),
        }

    def invert(self, problem: InversionProblem) -> list[Inversion]:
        config = problem.config  # a PromptTokensConfig: the settings hold this method's config class
        trajectory = problem.ddim_trajectory()
        n_positions = [config.token_count(prompt) for prompt in problem.prompts]
        free = problem.free_rows(n_positions, pooled=config.pooled)
        fit = problem.fit_embeddings(trajectory, slot="cond", free=free)
        return problem.result(latents=trajectory[0], prompt_embeds=fit.embeds, fit=fit)


METHOD = PromptTokenInversion()
