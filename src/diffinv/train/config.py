"""Every setting of a mini training run (:mod:`diffinv.train.mini`): :class:`MiniConfig`, its stages' configs and
the named presets (no torch).

The stages (:mod:`~diffinv.train.vae`, :mod:`~diffinv.train.text`, :mod:`~diffinv.train.unet`) and the command
that runs them import their configs from here, so no stage imports the command. A work folder stores its config in
``config.json`` (:meth:`~diffinv.config.Config.to_dict`); :meth:`MiniConfig.from_dict` reads one written by any
release (:class:`~diffinv.loop.config.TrainingConfig`). Why the defaults are what they are, with the measurements:
``docs/mini.md`` ("Recipe").
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Final

from diffinv.config import Config, SamplingConfig
from diffinv.loop.config import TrainingConfig
from diffinv.shapes.world import DEFAULT_WORLD

# --------------------------------------------------------------------------------------------------------
# Stage 1: the VAE
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class CropConfig(Config):
    """Random-resized crops of the photos."""

    min_scale: float = 0.15
    """Smallest crop side as a fraction of the photo's short side (the largest is the whole short side)."""
    flip_prob: float = 0.5
    """Probability of a horizontal flip."""


@dataclass(frozen=True)
class VAEModelConfig(Config):
    """Architecture of the :class:`~diffusers.AutoencoderKL` (SD's layout at a smaller width)."""

    block_out_channels: tuple[int, ...] = (16, 32, 64)
    """One entry per resolution level; ``len - 1`` downsamplings (4 levels: factor 8, SD's layout; 3 levels:
    factor 4, 16x16 latents at 64 px, which the shipped model uses — why: ``docs/mini.md``)."""
    layers_per_block: int = 1
    latent_channels: int = 4
    norm_num_groups: int = 8
    image_size: int = 64


@dataclass(frozen=True)
class VAETrainConfig(TrainingConfig):
    """VAE stage: data mix, losses and optimisation."""

    model: VAEModelConfig = field(default_factory=VAEModelConfig)
    steps: int = 4500
    batch_size: int = 16
    learning_rate: float = 1e-3
    """Peak AdamW learning rate (linear warm-up, then cosine decay to ``learning_rate * min_lr_ratio``)."""
    min_lr_ratio: float = 0.05
    warmup_steps: int = 100
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    """Decay of the weights' EMA (with the usual ``(1 + k) / (10 + k)`` warm-up); the EMA is exported."""
    l1_weight: float = 1.0
    mse_weight: float = 1.0
    grad_weight: float = 1.0
    """Weight of the L1 distance between the images' horizontal and vertical finite differences (sharp edges)."""
    kl_weight: float = 1e-6
    """Weight of the KL term (per latent element, summed loss normalised per pixel value)."""
    photo_fraction: float = 0.25
    """Fraction of a batch that is photo crops (the rest are Shapes renders)."""
    crop: CropConfig = field(default_factory=CropConfig)
    object_probs: tuple[float, ...] = (1.0, 1.0, 1.0)
    """Relative probabilities of 1, 2 and 3 objects in the Shapes renders."""
    scale_images: int = 1024
    """Train-split Shapes renders whose latent std sets ``scaling_factor``."""
    eval_images: int = 256
    """Held-out (test-split) Shapes scenes of the PSNR evaluation."""
    eval_seed: int = 7
    checkpoint_every: int = 250
    max_minutes: float = 0.0
    """Wall-time cap of one run of the stage (``0``: none); ``--minutes`` overrides it."""


# --------------------------------------------------------------------------------------------------------
# Stage 2: the text encoder
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TextModelConfig(Config):
    """The CLIP text encoder (SD's architecture at a smaller width; the vocabulary is CLIP's 49,408 tokens)."""

    hidden_size: int = 64
    num_hidden_layers: int = 3
    num_attention_heads: int = 4
    intermediate_size: int = 256
    max_length: int = 32
    """Context length: the tokenizer's ``model_max_length`` and the encoder's positions (world v2's captions have at
    most 30 tokens + BOS + EOS)."""


@dataclass(frozen=True)
class TextTrainConfig(TrainingConfig):
    """Text stage: pretrain the text encoder (architecture: ``UNetTrainConfig.text``) to parse captions, the part
    CLIP's pretraining plays for Stable Diffusion. Heads on the last hidden states predict, at every position, what
    a causal encoder can know there (:func:`diffinv.train.data.caption_targets`): each object's attributes along
    its phrase, the background after the word ``background``, and a 3 x 3 grid of (shape, colour) at EOS."""

    steps: int = 2000
    batch_size: int = 128
    learning_rate: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    ema_decay: float = 0.99
    object_probs: tuple[float, ...] = (1.0, 1.0, 1.0)
    """Relative probabilities of 1, 2 and 3 objects in the training captions."""
    eval_captions: int = 512
    """Held-out (test-split) captions scored at the end (``text/eval.json``)."""
    eval_seed: int = 5
    checkpoint_every: int = 500
    max_minutes: float = 0.0
    """Wall-time cap of one run of the stage (``0``: none); ``--minutes`` overrides it."""


# --------------------------------------------------------------------------------------------------------
# Stage 3: the UNet
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class UNetModelConfig(Config):
    """Architecture of the :class:`~diffusers.UNet2DConditionModel`."""

    block_out_channels: tuple[int, ...] = (32, 64, 128)
    layers_per_block: int = 1
    down_block_types: tuple[str, ...] = ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D")
    up_block_types: tuple[str, ...] = ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D")
    attention_head_dim: int = 4
    """Passed to diffusers as ``attention_head_dim``, which UNet2DConditionModel uses as the number of heads."""
    norm_num_groups: int = 8
    transformer_layers_per_block: int = 1
    """Transformer blocks (self- + cross-attention + feed-forward) in each cross-attention block and the middle."""


@dataclass(frozen=True)
class UNetTrainConfig(TrainingConfig):
    """Text encoder + UNet stage."""

    text: TextModelConfig = field(default_factory=TextModelConfig)
    model: UNetModelConfig = field(default_factory=UNetModelConfig)
    steps: int = 12000
    batch_size: int = 32
    learning_rate: float = 1e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 200
    weight_decay: float = 0.01
    """AdamW weight decay of the weight matrices and kernels (not biases, norms, or the text embeddings)."""
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    snr_gamma: float = 5.0
    """Min-SNR-γ loss weighting (Hang et al. 2023): ε-loss × ``min(SNR, γ) / SNR``; ``0`` disables it."""
    snr_floor: float = 0.2
    """Lifts the x0-weight of the high-noise steps to at least this (ε-loss × ``max(SNR, floor) / SNR``); ``0``
    disables it. See :func:`diffinv.train.unet.min_snr_weights`."""
    high_noise_fraction: float = 0.3
    """Fraction of the training timesteps drawn from ``[high_noise_min_t, 1000)`` instead of ``[0, 1000)``."""
    high_noise_min_t: int = 700
    text_lr_scale: float = 0.0
    """Learning rate of the pretrained text encoder relative to ``learning_rate`` (``0`` freezes it, as SD freezes
    CLIP)."""
    empty_caption_prob: float = 0.1
    """Probability of training on the empty caption (classifier-free guidance)."""
    caption_levels: tuple[tuple[str, float], ...] = (("full", 1.0),)
    """``(level, weight)`` pairs: the levels of detail of the training captions (:mod:`diffinv.shapes.descriptions`:
    ``full``, ``partial``, ``short``); v1 and v2 train on full captions only."""
    object_probs: tuple[float, ...] = (0.45, 0.35, 0.2)
    """Relative probabilities of 1, 2, 3 (and 4, in world v3) objects in the pool's scenes."""
    color_weights: tuple[tuple[str, float], ...] = ()
    """``(colour, weight)`` pairs: scenes with objects of these colours are more frequent in the pool (other
    colours weigh 1; :func:`diffinv.train.data.sample_train_scenes`). Empty: v1's unweighted pool."""
    size_weights: tuple[tuple[str, float], ...] = ()
    """``(size, weight)`` pairs, as ``color_weights`` (e.g. more small objects, the ones that lose their corners)."""
    pool_size: int = 32768
    """Train-split scenes rendered and encoded once by the frozen VAE (posterior mean and std are stored; each
    step samples a latent from the posterior and a fresh caption variant)."""
    checkpoint_every: int = 250
    eval_every_minutes: float = 20.0
    """Score the EMA model with the probe every this many minutes of training (``0``: never; needs a probe)."""
    eval_prompts: int = 48
    """Prompts per caption set (single-object, two-object) of the periodic evaluation."""
    eval_seed: int = 11
    max_minutes: float = 0.0
    """Wall-time cap of one run of the stage (``0``: none); ``--minutes`` overrides it."""


# --------------------------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MiniConfig(TrainingConfig):
    """Every hyperparameter of a mini training run (the defaults: v1's recipe, the first shipped one)."""

    vae: VAETrainConfig = field(default_factory=VAETrainConfig)
    text: TextTrainConfig = field(default_factory=TextTrainConfig)
    unet: UNetTrainConfig = field(default_factory=UNetTrainConfig)
    world: str = DEFAULT_WORLD
    """The Shapes world of the training scenes and captions (:mod:`diffinv.shapes.world`; v1 and v2: ``v2``)."""
    seed: int = 0
    num_threads: int = 1
    """Torch intra-op threads of the training processes."""
    guidance_scale: float = SamplingConfig.default("guidance_scale")
    """Classifier-free guidance of the evaluations (the sampler's default, :class:`~diffinv.config.SamplingConfig`)."""
    num_inference_steps: int = SamplingConfig.default("num_inference_steps")
    """DDIM steps of the evaluations (the sampler's default)."""


V2_UNET: Final[UNetModelConfig] = UNetModelConfig(
    block_out_channels=(32, 64),
    down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
    up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
)
"""v2's UNet (issue 14): v1's 16 x 16 (32 channels) and 8 x 8 (64 channels, cross-attention) levels without its
4 x 4 level (128 channels, most of v1's parameters); cross-attention at 8 x 8 down, middle and up. Its size and
speed against v1's, and why not wider: ``docs/mini.md`` ("Version 2")."""


def v2_config() -> MiniConfig:
    """The v2 recipe (issue 14): v1's VAE and text encoder (trained once, reused: ``train-artifacts/mini`` and
    ``import-text``), a faster UNet (:data:`V2_UNET`) trained longer, on a pool weighted towards two- and
    three-object scenes, the confused colours (pink/white, orange/red, yellow) and small objects."""
    base = MiniConfig()
    unet = dataclasses.replace(
        base.unet,
        model=V2_UNET,
        steps=60000,
        warmup_steps=500,
        ema_decay=0.9995,
        object_probs=(0.25, 0.4, 0.35),
        color_weights=(("pink", 2.0), ("white", 1.5), ("orange", 2.0), ("red", 1.5), ("yellow", 1.25)),
        size_weights=(("small", 1.5),),
        pool_size=65536,
        checkpoint_every=2000,
        eval_every_minutes=30.0,
    )
    return dataclasses.replace(base, unet=unet)


def v3_config() -> MiniConfig:
    """The v3 recipe (issue 23), a first choice to be measured: world v3 (37 shapes, up to four overlapping objects,
    fills), its VAE and text encoder trained anew (the text encoder with 64 positions: full v3 captions reach 62
    tokens), v2's UNet on a pool of v3 scenes captioned at three levels of detail (full, partial as people write
    them, short) plus 10 % empty captions."""
    base = v2_config()
    text = dataclasses.replace(base.unet.text, max_length=64)
    unet = dataclasses.replace(
        base.unet,
        text=text,
        object_probs=(0.25, 0.3, 0.25, 0.2),
        color_weights=(),
        size_weights=(),
        caption_levels=(("full", 0.4), ("partial", 0.45), ("short", 0.15)),
    )
    vae = dataclasses.replace(base.vae, object_probs=(1.0, 1.0, 1.0, 1.0))
    text_stage = dataclasses.replace(base.text, steps=3000, object_probs=(1.0, 1.0, 1.0, 1.0))
    return dataclasses.replace(base, world="v3", vae=vae, text=text_stage, unet=unet)


PRESETS: Final[Mapping[str, Callable[[], MiniConfig]]] = {"v1": MiniConfig, "v2": v2_config, "v3": v3_config}
"""Named base configs of a new work folder (``--preset``); ``v1`` (the default) is the shipped model's recipe."""


__all__ = [
    "PRESETS",
    "V2_UNET",
    "CropConfig",
    "MiniConfig",
    "TextModelConfig",
    "TextTrainConfig",
    "UNetModelConfig",
    "UNetTrainConfig",
    "VAEModelConfig",
    "VAETrainConfig",
    "v2_config",
    "v3_config",
]
