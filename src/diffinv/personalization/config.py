"""How a personalization method is configured: frozen, validated :class:`~diffinv.config.Config` dataclasses (no
torch), so the command line can describe every option without loading a model library. Each method's config class is
named beside the method in :mod:`diffinv.personalization.registry`.

A config is also the stage config of :func:`diffinv.loop.stage.run_stage`, which reads ``steps``, ``learning_rate``,
``warmup_steps``, ``min_lr_ratio``, ``grad_clip`` and ``checkpoint_every``; the last three that a user does not set
are read-only properties.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from diffinv.config import Config, setting
from diffinv.errors import DiffinvError, check_integer, check_number

PROPERTIES = ("object", "style")
"""What a concept is (Gal et al. 2022): an object, or a style; it chooses the prompt templates."""

MAX_STEPS = 50_000  # 10x the paper's 5000 textual-inversion steps; more is a typo
MAX_VECTORS = 75  # a CLIP prompt holds 77 tokens, BOS and EOS included


@dataclass(frozen=True)
class LearningConfig(Config):
    """What every personalization method's optimisation shares (each method's config subclasses it and says where
    its defaults come from)."""

    steps: int = setting(1000, "optimisation steps")
    learning_rate: float = setting(1e-4, "AdamW learning rate (constant after warm-up)")
    batch_size: int = setting(1, "images (with their captions) per step")
    weight_decay: float = setting(1e-2, "AdamW weight decay of the learned parameters")
    flip_probability: float = setting(0.0, "probability of a horizontal flip per image")
    warmup_steps: int = setting(0, "linear learning-rate warm-up steps")
    checkpoint_every: int = setting(500, "steps between checkpoints (with a folder)")
    caption_dropout: float = setting(0.0, "probability of an empty caption per image")

    def __post_init__(self) -> None:
        check_integer("steps", self.steps, minimum=1, maximum=MAX_STEPS)
        check_number("caption_dropout", self.caption_dropout, minimum=0, maximum=1)
        check_number("learning_rate", self.learning_rate, minimum=0, above=True)
        check_integer("batch_size", self.batch_size, minimum=1, maximum=1024)
        check_number("weight_decay", self.weight_decay, minimum=0)
        check_number("flip_probability", self.flip_probability, minimum=0, maximum=1)
        check_integer("warmup_steps", self.warmup_steps, minimum=0)
        check_integer("checkpoint_every", self.checkpoint_every, minimum=1)

    @property
    def min_lr_ratio(self) -> float:
        """1: the rate stays constant after the warm-up, as in Gal et al.'s and diffusers' examples."""
        return 1.0

    @property
    def grad_clip(self) -> float:
        """No clipping (Gal et al. clip nothing; diffusers' examples clip at 1, rarely reached at these rates)."""
        return math.inf


def _default(name: str, value: Any) -> Any:
    """Field ``name`` of :class:`LearningConfig` with the default ``value`` (its help text stays stated once)."""
    return setting(value, LearningConfig.help(name))


@dataclass(frozen=True)
class TextualInversionConfig(LearningConfig):
    """Textual inversion (Gal et al. 2022, "An Image is Worth One Word").

    Defaults: one vector, AdamW at a constant learning rate of 5e-3 (the paper's base rate, ``base_learning_rate``
    of its LDM configs), batches of 4, weight decay 1e-2 (AdamW's default in the authors' and diffusers' code),
    horizontal flips with probability 0.5 (their data loader). ``steps`` = 2000 is our choice on the built-in model
    (docs/personalization.md); the paper ran 5000 on Stable Diffusion's predecessor LDM.
    """

    steps: int = _default("steps", 2000)
    learning_rate: float = _default("learning_rate", 5e-3)
    batch_size: int = _default("batch_size", 4)
    flip_probability: float = _default("flip_probability", 0.5)
    num_vectors: int = setting(1, "embedding vectors of the new token", aliases=("--vectors",))

    def __post_init__(self) -> None:
        super().__post_init__()
        check_integer("num_vectors", self.num_vectors, minimum=1, maximum=MAX_VECTORS)


LORA_TARGETS = ("to_q", "to_k", "to_v", "to_out.0")
"""The UNet attention projections LoRA adapts (diffusers' DreamBooth-LoRA example)."""


@dataclass(frozen=True)
class LoRAConfig(LearningConfig):
    """DreamBooth-style LoRA (Ruiz et al. 2023 with Hu et al. 2022's low-rank offsets) on the UNet's attention
    projections :data:`LORA_TARGETS`, the weight-tuning baseline.

    Defaults from diffusers' ``train_dreambooth_lora.py``: rank 4 (``lora_alpha`` = rank), AdamW at 1e-4 with weight
    decay 1e-2, batch 1, no flips, 500 steps. The token's embedding is the init word's, frozen (DreamBooth keeps the
    text encoder frozen in its LoRA variant): the identifier is the init word's embedding under a new name.
    """

    steps: int = _default("steps", 500)
    rank: int = setting(4, "LoRA rank r (lora_alpha = r)")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_integer("rank", self.rank, minimum=1, maximum=1024)


def check_property(value: object) -> str:
    """``value`` if it is one of :data:`PROPERTIES`, else :class:`DiffinvError`."""
    if value not in PROPERTIES:
        raise DiffinvError(f"property must be one of {', '.join(PROPERTIES)}, got {value!r}")
    return str(value)


@dataclass(frozen=True)
class E4TConfig(LearningConfig):
    """E4T's per-concept tuning (Gal et al. 2023): start from the domain encoder's prediction for the shot(s), then
    tune the word embedding and the cross-attention offsets for a few steps (the paper: 5–15; 15 here).

    ``learning_rate`` 1e-3 and ``batch_size`` 4 are our choice on the built-in model (the paper tunes full weights
    at 1e-6–5e-6; ours are low-rank offsets of a small model); ``caption_dropout`` 0.2 as in the encoder's
    pre-training (the offsets act on the empty prompt of classifier-free guidance too, so it is trained with them).
    ``encoder``: a folder written by ``python -m diffinv.train.e4t`` (default: the encoder shipped for the built-in
    model).
    """

    steps: int = setting(15, "tuning steps after the encoder's prediction")
    learning_rate: float = _default("learning_rate", 1e-3)
    batch_size: int = _default("batch_size", 4)
    caption_dropout: float = _default("caption_dropout", 0.2)
    encoder: str | None = setting(None, "E4T encoder folder (default: the shipped one)")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.encoder is not None and not isinstance(self.encoder, str):
            raise DiffinvError(f"encoder must be a folder name, got {self.encoder!r}")
