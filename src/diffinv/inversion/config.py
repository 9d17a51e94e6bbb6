"""How an inversion is configured: the settings every method shares (:class:`InversionConfig`), those of the
methods that optimise an embedding per step (:class:`OptimizingInversionConfig`, with the optimiser's
:class:`OptimizationConfig`). A method whose settings go further subclasses one of them in its own file
(``prompt_tokens.PromptTokensConfig``) and names its class as ``config_class``.

Plain :class:`~diffinv.config.Config` dataclasses (no torch), so the command line can describe every option without
loading a model library.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from diffinv.config import Config, SamplingConfig, init_fields, setting
from diffinv.errors import DiffinvError, check_integer, check_number

MAX_INNER_STEPS = 10_000  # optimiser iterations per step; more is a typo, not a setting


@dataclass(frozen=True)
class InversionConfig(SamplingConfig):
    """What every inversion method shares: the DDIM schedule it inverts along (``num_inference_steps``) and the
    classifier-free guidance its reconstruction uses (``guidance_scale``; the optimising methods fit their
    embeddings for it).

    Defaults: Mokady et al. 2022's (50 steps, guidance 7.5: Stable Diffusion's sampler, :class:`SamplingConfig`),
    which the reference paper keeps. ``ddim``, ``negative-prompt`` and ``direct`` take this class as it is.
    """


@dataclass(frozen=True)
class OptimizationConfig(Config):
    """Per-timestep embedding optimisation shared by ``null-text`` and ``prompt-tokens``.

    Defaults are those of Mokady et al. 2022 ("Null-text Inversion", Alg. 1; official notebook): Adam with
    ``lr_i = learning_rate · (1 − i · lr_decay)`` = 1e-2·(1 − i/100) at step i, at most 10 inner iterations, stop early
    once the latent MSE < ``early_stop_epsilon + i · early_stop_growth`` = 1e-5 + i·2e-5.
    """

    num_inner_steps: int = setting(10, "maximum optimiser iterations per timestep")
    learning_rate: float = setting(1e-2, "Adam learning rate at the first step")
    lr_decay: float = setting(1e-2, "learning rate at step i = learning_rate * (1 - i * lr_decay)")
    early_stop_epsilon: float = setting(1e-5, "stop when latent MSE < epsilon + i*growth")
    early_stop_growth: float = setting(2e-5, "per-step growth of the early-stop threshold")

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


@dataclass(frozen=True)
class OptimizingInversionConfig(InversionConfig):
    """The methods that optimise an embedding at every step along the DDIM trajectory (``null-text``, and
    ``prompt-tokens`` through :class:`~diffinv.inversion.prompt_tokens.PromptTokensConfig`).

    Defaults: Mokady et al. 2022's, steps and guidance (:class:`InversionConfig`) and optimiser
    (:class:`OptimizationConfig`) alike.
    """

    # Its fields are options of their own (OptimizationConfig's), so this one is not.
    optimization: OptimizationConfig = setting(OptimizationConfig(), "the per-step embedding optimiser", option=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if not isinstance(self.optimization, OptimizationConfig):
            raise DiffinvError(f"optimization must be an OptimizationConfig, got {self.optimization!r}")


def default_of(cls: type[Config], name: str, default: Any) -> Any:
    """A subclass's redeclaration of field ``name`` of ``cls`` with another default (a method's own, e.g. the
    reference paper's 25 steps for ``prompt-tokens``); the help text and options stay the field's."""
    return dataclasses.field(default=default, metadata=init_fields(cls)[name].metadata)
