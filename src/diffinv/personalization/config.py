"""How a personalization method is configured: frozen, validated dataclasses (no torch), so the command line can
describe every option without loading a model library.

A config is also the stage config of :func:`diffinv.loop.stage.run_stage`, which reads ``steps``, ``lr``,
``warmup_steps``, ``min_lr_ratio``, ``grad_clip`` and ``checkpoint_every``; the fields a user sets use diffusers'
names (``learning_rate``), the loop's names are read-only properties.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from diffinv.errors import DiffinvError, check_integer, check_number

PROPERTIES = ("object", "style")
"""What a concept is (Gal et al. 2022): an object, or a style; it chooses the prompt templates."""

MAX_STEPS = 50_000  # 10x the paper's 5000 textual-inversion steps; more is a typo
MAX_VECTORS = 75  # a CLIP prompt holds 77 tokens, BOS and EOS included


@dataclass(frozen=True)
class LearningConfig:
    """What every personalization method's optimisation shares (each method's config subclasses it and says where
    its defaults come from)."""

    steps: int = field(default=1000, metadata={"help": "optimisation steps"})
    learning_rate: float = field(default=1e-4, metadata={"help": "AdamW learning rate (constant after warm-up)"})
    batch_size: int = field(default=1, metadata={"help": "images (with their captions) per step"})
    weight_decay: float = field(default=1e-2, metadata={"help": "AdamW weight decay of the learned parameters"})
    flip_probability: float = field(default=0.0, metadata={"help": "probability of a horizontal flip per image"})
    warmup_steps: int = field(default=0, metadata={"help": "linear learning-rate warm-up steps"})
    checkpoint_every: int = field(default=500, metadata={"help": "steps between checkpoints (with a folder)"})
    caption_dropout: float = field(default=0.0, metadata={"help": "probability of an empty caption per image"})

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
    def lr(self) -> float:
        return self.learning_rate

    @property
    def min_lr_ratio(self) -> float:
        """1: the rate stays constant after the warm-up, as in Gal et al.'s and diffusers' examples."""
        return 1.0

    @property
    def grad_clip(self) -> float:
        """No clipping (Gal et al. clip nothing; diffusers' examples clip at 1, rarely reached at these rates)."""
        return math.inf

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Any) -> LearningConfig:
        """Read back a config stored in a file; unknown or bad fields raise :class:`DiffinvError`."""
        if not isinstance(data, dict):
            raise DiffinvError(f"a {cls.__name__} must be an object, got {type(data).__name__}")
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise DiffinvError(f"unknown {cls.__name__} setting(s): {', '.join(unknown)}")
        return cls(**data)


@dataclass(frozen=True)
class TextualInversionConfig(LearningConfig):
    """Textual inversion (Gal et al. 2022, "An Image is Worth One Word").

    Defaults: one vector, AdamW at a constant learning rate of 5e-3 (the paper's base rate, ``base_learning_rate``
    of its LDM configs), batches of 4, weight decay 1e-2 (AdamW's default in the authors' and diffusers' code),
    horizontal flips with probability 0.5 (their data loader). ``steps`` = 2000 is our choice on the built-in model
    (docs/personalization.md); the paper ran 5000 on Stable Diffusion's predecessor LDM.
    """

    steps: int = field(default=2000, metadata={"help": "optimisation steps"})
    learning_rate: float = field(default=5e-3, metadata={"help": "AdamW learning rate (constant after warm-up)"})
    batch_size: int = field(default=4, metadata={"help": "images (with their captions) per step"})
    flip_probability: float = field(default=0.5, metadata={"help": "probability of a horizontal flip per image"})
    num_vectors: int = field(
        default=1, metadata={"help": "embedding vectors of the new token", "aliases": ("--vectors",)}
    )

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

    steps: int = field(default=500, metadata={"help": "optimisation steps"})
    rank: int = field(default=4, metadata={"help": "LoRA rank r (lora_alpha = r)"})

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

    steps: int = field(default=15, metadata={"help": "tuning steps after the encoder's prediction"})
    learning_rate: float = field(default=1e-3, metadata={"help": "AdamW learning rate (constant after warm-up)"})
    batch_size: int = field(default=4, metadata={"help": "images (with their captions) per step"})
    caption_dropout: float = field(default=0.2, metadata={"help": "probability of an empty caption per image"})
    encoder: str | None = field(default=None, metadata={"help": "E4T encoder folder (default: the shipped one)"})

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.encoder is not None and not isinstance(self.encoder, str):
            raise DiffinvError(f"encoder must be a folder name, got {self.encoder!r}")


METHOD_CONFIGS: dict[str, type[LearningConfig]] = {
    "ti": TextualInversionConfig,
    "lora": LoRAConfig,
    "e4t": E4TConfig,
}
"""Each personalization method's config class (the registry's methods, by name; read without loading them)."""
