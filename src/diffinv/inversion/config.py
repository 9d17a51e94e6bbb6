"""How an inversion is configured: the settings common to all methods and the embedding optimiser's.

Plain dataclasses (no torch), so the command line can describe every option without loading a model library.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from diffinv.errors import DiffinvError, check_integer, check_number

if TYPE_CHECKING:
    from diffinv.text import EncodedPrompt

MAX_INNER_STEPS = 10_000  # optimiser iterations per step; more is a typo, not a setting


@dataclass(frozen=True)
class OptimizationConfig:
    """Per-timestep embedding optimisation shared by ``null-text`` and ``prompt-tokens``.

    Defaults are those of Mokady et al. 2022 ("Null-text Inversion", Alg. 1; official notebook): Adam with
    ``lr_i = learning_rate · (1 − i · lr_decay)`` = 1e-2·(1 − i/100) at step i, at most 10 inner iterations, stop early
    once the latent MSE < ``early_stop_epsilon + i · early_stop_growth`` = 1e-5 + i·2e-5.
    """

    num_inner_steps: int = field(default=10, metadata={"help": "maximum optimiser iterations per timestep"})
    learning_rate: float = field(default=1e-2, metadata={"help": "Adam learning rate at the first step"})
    lr_decay: float = field(default=1e-2, metadata={"help": "learning rate at step i = lr * (1 - i * lr_decay)"})
    early_stop_epsilon: float = field(default=1e-5, metadata={"help": "stop when latent MSE < epsilon + i*growth"})
    early_stop_growth: float = field(default=2e-5, metadata={"help": "per-step growth of the early-stop threshold"})

    def __post_init__(self) -> None:
        check_integer("num_inner_steps", self.num_inner_steps, minimum=1, maximum=MAX_INNER_STEPS)
        check_number("learning_rate", self.learning_rate, minimum=0, above=True)
        for name in ("lr_decay", "early_stop_epsilon", "early_stop_growth"):
            check_number(name, getattr(self, name), minimum=0)

    def learning_rate_at(self, step: int) -> float:
        """The learning rate at denoising step ``step`` (floored at 1 % of the initial rate for long schedules)."""
        return self.learning_rate * max(1.0 - step * self.lr_decay, 1e-2)

    def stop_threshold(self, step: int) -> float:
        return self.early_stop_epsilon + step * self.early_stop_growth


TOKEN_SLICES = ("semantic", "all")


@dataclass(frozen=True)
class InversionConfig:
    """Settings common to all methods.

    Attributes:
        num_inference_steps: DDIM steps; ``None`` takes the method's default (paper-given, see each method).
        guidance_scale: classifier-free guidance used when reconstructing/editing (7.5, as in Mokady et al. 2022
            and the reference paper).
        optimization: for the optimising methods.
        tokens: for ``prompt-tokens``, which positions of the conditional embedding are optimised: ``"semantic"``
            (BOS + prompt tokens + first EOS; the reference paper), ``"all"`` (every position) or a count ``"N"``.
        pooled: for ``prompt-tokens`` on SDXL, also optimise the conditional pooled text embedding (one more row
            per step; the unconditional slot stays free either way). On by default: on a tiny seeded SDXL pipeline
            it cut the latent error on 17 photos 4.7× at 25 steps and 4.8× at 10, at no extra time
            (``benchmarks/sdxl_pooled.py``, ``docs/results.md``); the ``paper`` preset keeps it, as the paper
            optimises token positions only. No effect on models without a pooled embedding.
    """

    num_inference_steps: int | None = None
    guidance_scale: float = 7.5
    optimization: OptimizationConfig = field(default_factory=OptimizationConfig)
    tokens: str = "semantic"
    pooled: bool = True

    def __post_init__(self) -> None:
        if self.num_inference_steps is not None:
            check_integer("num_inference_steps", self.num_inference_steps, minimum=1)
        check_number("guidance_scale", self.guidance_scale, minimum=0)
        if not isinstance(self.optimization, OptimizationConfig):
            raise DiffinvError(f"optimization must be an OptimizationConfig, got {self.optimization!r}")
        tokens = self.tokens
        if not isinstance(tokens, str) or (tokens not in TOKEN_SLICES and not (tokens.isdigit() and int(tokens) > 0)):
            raise DiffinvError(f"tokens must be 'semantic', 'all' or a positive count, got {tokens!r}")
        if not isinstance(self.pooled, bool):
            raise DiffinvError(f"pooled must be true or false, got {self.pooled!r}")

    def token_count(self, prompt: EncodedPrompt) -> int:
        """Number of leading positions of the conditional embedding that ``prompt-tokens`` optimises."""
        if self.tokens == "semantic":
            return prompt.n_tokens
        if self.tokens == "all":
            return prompt.max_length
        count = int(self.tokens)
        if count > prompt.max_length:
            raise DiffinvError(f"tokens={count} exceeds the text encoder's {prompt.max_length} positions")
        return count

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> InversionConfig:
        """Read back :meth:`to_dict`'s output (e.g. from a file), every field checked."""
        data = known_fields(cls, data, "config")
        optimization = known_fields(OptimizationConfig, data.get("optimization", {}), "optimization")
        data["optimization"] = OptimizationConfig(**optimization)
        return cls(**data)


def known_fields(cls: type, data: Any, name: str) -> dict[str, Any]:
    """``data`` as keyword arguments of dataclass ``cls``: a mapping with only its field names (values are checked
    by ``cls`` itself), else :class:`DiffinvError`."""
    if not isinstance(data, dict):
        raise DiffinvError(f"{name} must be a mapping, got {type(data).__name__}")
    unknown = set(data) - {f.name for f in dataclasses.fields(cls) if f.init}
    if unknown:
        raise DiffinvError(f"{name} has unknown field(s) {', '.join(sorted(map(str, unknown)))}")
    return dict(data)
