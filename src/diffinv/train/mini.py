"""Train the miniature Stable Diffusion ("mini") on the Shapes world, stage by stage, on a CPU.

Usage::

    python -m diffinv.train.mini vae      --work runs/mini [--minutes M] [--resume]
    python -m diffinv.train.mini text     --work runs/mini [--minutes M] [--resume]
    python -m diffinv.train.mini unet     --work runs/mini [--minutes M] [--resume] [--probe DIR]
    python -m diffinv.train.mini assemble --work runs/mini [--out DIR]
    python -m diffinv.train.mini eval     --work runs/mini [--out DIR] [--eval-prompts N] [--probe DIR]
    python -m diffinv.train.mini all      --work runs/mini [--minutes M] [--resume]   # vae, text, unet, assemble

Common options: ``--config FILE`` (JSON overrides of :class:`MiniConfig`, nested objects allowed), ``--seed S``,
``--vae-steps N``, ``--unet-steps N``, ``--no-progress``.

Stages (each can be re-run alone; each writes into its own folder of ``--work``):

1. ``vae`` — an :class:`~diffusers.AutoencoderKL` with Stable Diffusion's layout (4 latent channels, downsampling
   factor ``2 ** (len(block_out_channels) - 1)``) trained on Shapes renders and random crops of the scikit-image
   photos (:mod:`diffinv.train.data`), with L1 + MSE + image-gradient (edge) losses and a small KL term. The EMA of
   the weights is exported to ``vae/final`` with a ``scaling_factor`` measured on Shapes latents (1 / std, as
   Rombach et al. 2022), plus ``vae/eval.json`` (round-trip PSNR on held-out Shapes scenes and held-out photos).
2. ``text`` — a small :class:`~transformers.CLIPTextModel` (real CLIP BPE tokenizer, EOS padding, context length
   from the config: the tokenizer's ``model_max_length``) pretrained to parse captions: linear heads on its last
   hidden states predict, at every position, what a causal encoder can know there (each object's size, colour,
   shape and cell along its phrase, the background after the word ``background``, a 3 x 3 grid of shapes and
   colours at EOS; :func:`diffinv.train.data.caption_targets`). This is the part CLIP's pretraining plays for SD;
   the heads are dropped. Exported to ``text/final`` with ``text/eval.json`` (held-out caption parsing accuracy).
3. ``unet`` — a :class:`~diffusers.UNet2DConditionModel` trained on latents of a pool of pre-encoded train-split
   scenes (the VAE is frozen) with the pretrained text encoder (frozen by default, like SD's CLIP;
   ``text_lr_scale`` > 0 fine-tunes it), ε-prediction with Stable Diffusion's scaled-linear schedule, 10 % empty
   captions (classifier-free guidance), min-SNR-γ loss weighting, AdamW with warm-up + cosine decay, and an EMA of
   the weights, which is what gets exported to ``unet/final``. With a probe available, the EMA model is scored
   every ``eval_every_minutes`` (``unet/eval.jsonl``): DDIM 50 steps at guidance 7.5 on held-out single- and
   two-object captions.
4. ``assemble`` — a diffusers :class:`~diffusers.StableDiffusionPipeline` folder (fp16 safetensors, DDIM scheduler
   with SD's schedule) written to ``--out`` (default: the package's ``assets/models/mini``).
5. ``eval`` — scores an assembled folder: VAE PSNR, generation accuracy with :func:`diffinv.api.generate` and the
   probe, seconds per 50-step image, load time and weight megabytes (``eval.json`` beside the stage folders).

Checkpoints: ``<stage>/checkpoints/step-NNNNNN/`` holds ``model.safetensors`` (the trained weights),
``ema.safetensors`` (their EMA), ``optimizer.pt`` (an optimizer state dict, read back with
``torch.load(weights_only=True)``) and ``state.json`` (step, timings, the stage config); ``checkpoints/latest.json``
names the newest complete one and is written last. A stage saves every ``checkpoint_every`` steps, on SIGTERM /
Ctrl-C, and when its ``--minutes`` budget runs out, so ``--resume`` continues a killed run. Batch ``k`` depends only
on ``(seed, k)`` (:func:`diffinv.train.data.batch_rng`), so a resumed run sees the data of an uninterrupted one.
``--minutes`` caps the wall time of each training stage of one invocation; a stage stopped by it still exports its
EMA weights, marked ``"complete": false``. The config of a work folder is written to ``config.json`` on first use
and is the base of every later invocation (``--config`` and the flags override it).

Recipe (the defaults of :class:`MiniConfig`; measured on a shared 2-core CPU, one torch thread):

* Latents 4 x 16 x 16 (VAE factor 4), not SD's 8 x 8: at 64 px a small object is 11 px wide, 1.4 latent pixels at
  factor 8, so its shape has to be packed into a couple of latent vectors. With equal CPU time, a factor-4 VAE
  (16/32/64 channels, 450 steps) beat a factor-8 one (16/32/64/128, 700 steps) on held-out Shapes PSNR (21.1 vs
  20.8 dB), photo PSNR (17.3 vs 15.9 dB) and on what the probe reads back from its reconstructions (shape 30 % vs
  17 %, position 81 % vs 71 %), and the 16 x 16 UNet below costs about the same per step as a 64/128-channel 8 x 8
  one. Every consumer reads ``vae_scale_factor`` from the pipeline.
* Narrow full-resolution layers: 16 channels at 64 px run 3.5x faster than 32 (0.51 vs 1.76 s per batch of 16),
  which buys 4,500 VAE steps in ~34 min; L1 + MSE + gradient losses, EMA 0.999, 25 % photo crops.
* UNet 32/64/128 channels, cross-attention at 8 x 8, 4 x 4 and the middle (none at 16 x 16), 4 heads: a 50-step
  guided generation costs ~0.9 s on one thread (diffusers' per-module overhead dominates; wider or deeper UNets
  were 1.1-2.3 s). Text encoder: width 64, 3 layers, 32 positions (captions have at most 30 tokens + BOS + EOS).
* AdamW 1e-3 (warm-up 200, cosine to 10 %), batch 32, EMA 0.999: with identical batches, 1e-3 reached a lower loss
  than 3e-4 after 570 steps (0.042 vs 0.064).
* A pretrained, frozen text encoder (the ``text`` stage, 2,000 steps, ~5 min; 100 % held-out parsing accuracy).
  Trained jointly from scratch with the UNet instead, three runs (plain min-SNR-5; a 0.2 x0 floor; a 0.5 floor with
  30 % high-noise steps) all stayed at chance after ~3,400 steps (probe: position 12-18 %, shape ≤ 2 %) with
  backgrounds right: the x0 predicted for a caption did not change at all when its position words changed. With the
  pretrained encoder, 1,931 steps reached position 100 %, size 96 %, colour 71 %, shape 23 %, and 12,000 steps
  (76 min) shape 85 %, colour 98 % (48 held-out captions; the curve is in ``docs/mini.md``).
* Loss weighting: the x0-error weight is ``clamp(SNR, 0.2, 5)`` (min-SNR-5 plus a floor) and 30 % of the timesteps
  are drawn from ``[700, 1000)``, where only the caption decides the layout (kept from the joint-training attempts;
  not ablated with the pretrained encoder).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
from diffusers import AutoencoderKL, DDIMScheduler, StableDiffusionPipeline, UNet2DConditionModel
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from tqdm import tqdm
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from diffinv.denoiser import Denoiser, Schedule
from diffinv.errors import DiffinvError
from diffinv.io import atomic_write
from diffinv.shapes.captions import caption
from diffinv.shapes.scene import Scene
from diffinv.shapes.splits import item_rng, sample_scene
from diffinv.testing import SD_SCHEDULER_CONFIG
from diffinv.train.common import (
    CHECKPOINTS,
    EMA,
    LATEST,
    MODEL_FILE,
    Clock,
    StopFlag,
    flat_state,
    from_json,
    init_seed,
    learning_rate,
    load_flat_state,
    read_checkpoint,
    sigterm_sets,
    to_json,
    write_checkpoint,
    write_json,
)
from diffinv.train.data import (
    CAPTION_HEADS,
    IGNORE,
    CropConfig,
    batch_rng,
    caption_targets,
    eval_photo_crops,
    render_scenes,
    sample_captions,
    sample_train_scenes,
    to_uint8,
    vae_batch,
)

VAE_STREAM: Final[int] = 0x766165  # "vae"
"""First spawn-key entry of the VAE stage's batch seeds."""
UNET_STREAM: Final[int] = 0x756E6574  # "unet"
"""First spawn-key entry of the UNet stage's batch seeds."""
TEXT_STREAM: Final[int] = 0x74657874  # "text"
"""First spawn-key entry of the text stage's batch seeds."""
POOL_STREAM: Final[int] = 0x706F6F6C  # "pool"
"""Spawn-key entry of the UNet stage's pool of scenes."""

CONFIG_NAME: Final[str] = "config.json"
EMA_FILE: Final[str] = "ema.safetensors"
FINAL: Final[str] = "final"
STAGES: Final[tuple[str, ...]] = ("vae", "text", "unet", "assemble", "eval", "all")
TRAINING_RECORD: Final[str] = "training.json"
"""File the assembled pipeline folder carries: the config and the stages' final states."""


def default_output() -> Path:
    """Where ``assemble`` writes by default: the package's ``assets/models/mini``."""
    return Path(str(resources.files("diffinv"))) / "assets" / "models" / "mini"


def default_tokenizer_path() -> Path:
    return Path(str(resources.files("diffinv"))) / "assets" / "clip_tokenizer"


# --------------------------------------------------------------------------------------------------------
# Configuration: the single home of every hyperparameter
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VAEModelConfig:
    """Architecture of the :class:`~diffusers.AutoencoderKL` (SD's layout at a smaller width)."""

    block_out_channels: tuple[int, ...] = (16, 32, 64)
    """One entry per resolution level; ``len - 1`` downsamplings (4 levels: factor 8, SD's layout; 3 levels:
    factor 4, 16x16 latents at 64 px, which the shipped model uses — see the module docstring)."""
    layers_per_block: int = 1
    latent_channels: int = 4
    norm_num_groups: int = 8
    image_size: int = 64


@dataclass(frozen=True)
class VAETrainConfig:
    """VAE stage: data mix, losses and optimisation."""

    model: VAEModelConfig = field(default_factory=VAEModelConfig)
    steps: int = 4500
    batch_size: int = 16
    lr: float = 1e-3
    """Peak AdamW learning rate (linear warm-up, then cosine decay to ``lr * min_lr_ratio``)."""
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


@dataclass(frozen=True)
class TextModelConfig:
    """The CLIP text encoder (SD's architecture at a smaller width; the vocabulary is CLIP's 49,408 tokens)."""

    hidden_size: int = 64
    num_hidden_layers: int = 3
    num_attention_heads: int = 4
    intermediate_size: int = 256
    max_length: int = 32
    """Context length: the tokenizer's ``model_max_length`` and the encoder's positions (captions have at most
    30 tokens + BOS + EOS)."""


@dataclass(frozen=True)
class TextTrainConfig:
    """Text stage: pretrain the text encoder (architecture: ``UNetTrainConfig.text``) to parse captions, the part
    CLIP's pretraining plays for Stable Diffusion. Heads on the last hidden states predict, at every position, what
    a causal encoder can know there (:func:`diffinv.train.data.caption_targets`): each object's attributes along
    its phrase, the background after the word ``background``, and a 3 x 3 grid of (shape, colour) at EOS."""

    steps: int = 2000
    batch_size: int = 128
    lr: float = 2e-3
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


@dataclass(frozen=True)
class UNetModelConfig:
    """Architecture of the :class:`~diffusers.UNet2DConditionModel`."""

    block_out_channels: tuple[int, ...] = (32, 64, 128)
    layers_per_block: int = 1
    down_block_types: tuple[str, ...] = ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D")
    up_block_types: tuple[str, ...] = ("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D")
    attention_head_dim: int = 4
    """Passed to diffusers as ``attention_head_dim``, which UNet2DConditionModel uses as the number of heads."""
    norm_num_groups: int = 8


@dataclass(frozen=True)
class UNetTrainConfig:
    """Text encoder + UNet stage."""

    text: TextModelConfig = field(default_factory=TextModelConfig)
    model: UNetModelConfig = field(default_factory=UNetModelConfig)
    steps: int = 12000
    batch_size: int = 32
    lr: float = 1e-3
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
    disables it. See :func:`min_snr_weights`."""
    high_noise_fraction: float = 0.3
    """Fraction of the training timesteps drawn from ``[high_noise_min_t, 1000)`` instead of ``[0, 1000)``."""
    high_noise_min_t: int = 700
    text_lr_scale: float = 0.0
    """Learning rate of the pretrained text encoder relative to ``lr`` (``0`` freezes it, as SD freezes CLIP)."""
    empty_caption_prob: float = 0.1
    """Probability of training on the empty caption (classifier-free guidance)."""
    object_probs: tuple[float, ...] = (0.45, 0.35, 0.2)
    """Relative probabilities of 1, 2 and 3 objects in the pool's scenes."""
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


@dataclass(frozen=True)
class MiniConfig:
    """Every hyperparameter of a mini training run."""

    vae: VAETrainConfig = field(default_factory=VAETrainConfig)
    text: TextTrainConfig = field(default_factory=TextTrainConfig)
    unet: UNetTrainConfig = field(default_factory=UNetTrainConfig)
    seed: int = 0
    num_threads: int = 1
    """Torch intra-op threads of the training processes."""
    guidance_scale: float = 7.5
    """Classifier-free guidance of the evaluations."""
    num_inference_steps: int = 50
    """DDIM steps of the evaluations."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible nested dictionary."""
        return to_json(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> MiniConfig:
        """Inverse of :meth:`to_dict`; missing keys keep their defaults, unknown keys raise ValueError."""
        return from_json(cls, data)


MUTABLE_FIELDS: Final[frozenset[str]] = frozenset(
    {"steps", "max_minutes", "checkpoint_every", "eval_every_minutes", "eval_prompts", "eval_images"}
)
"""Stage-config fields a resumed stage may change (``steps`` may grow; the LR schedule then stretches)."""


def _merge(base: dict[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """Recursive dictionary update (nested objects merge, other values replace)."""
    merged = dict(base)
    for key, value in overrides.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _frozen_part(stage_config: Any) -> dict[str, Any]:
    return {k: v for k, v in to_json(stage_config).items() if k not in MUTABLE_FIELDS}


# --------------------------------------------------------------------------------------------------------
# Checkpoints and the optimisation loop of a stage
# --------------------------------------------------------------------------------------------------------


def save_checkpoint(
    folder: Path,
    modules: Mapping[str, nn.Module],
    ema: EMA,
    optimizer: torch.optim.Optimizer,
    state: dict[str, Any],
    keep: int = 1,
) -> Path:
    """Write ``folder/checkpoints/step-NNNNNN/`` (:data:`MODEL_FILE`: the modules' :func:`flat_state`,
    :data:`EMA_FILE`: its EMA, the optimizer and ``state``) with :func:`~diffinv.train.common.write_checkpoint`."""
    tensors = {
        MODEL_FILE: (flat_state(modules), {"step": str(state["step"])}),
        EMA_FILE: (ema.state(), {"updates": str(ema.updates)}),
    }
    return write_checkpoint(folder, tensors, optimizer, state, keep)


def load_checkpoint(
    folder: Path, modules: Mapping[str, nn.Module], ema: EMA, optimizer: torch.optim.Optimizer
) -> dict[str, Any]:
    """Restore the newest checkpoint of ``folder`` into the modules, the EMA and the optimizer; returns its state."""
    target, state = read_checkpoint(folder, optimizer)
    load_flat_state(modules, load_file(target / MODEL_FILE))
    ema.load(load_file(target / EMA_FILE), int(state["ema_updates"]))
    return state


def _check_resumable(state: Mapping[str, Any], stage_config: Any, stage: str) -> None:
    saved = state.get("config")
    if saved is not None and {k: v for k, v in saved.items() if k not in MUTABLE_FIELDS} != _frozen_part(stage_config):
        raise DiffinvError(f"cannot resume the {stage} stage with a different config than its checkpoint's")


def restore_stage(
    stage: str,
    folder: Path,
    modules: Mapping[str, nn.Module],
    ema: EMA,
    optimizer: torch.optim.Optimizer,
    stage_config: Any,
    resume: bool,
) -> dict[str, Any]:
    """Resume or refuse: with ``resume``, load the newest checkpoint of ``folder`` (its frozen config fields must
    match ``stage_config``); without, refuse a ``folder`` that already holds one. Creates ``folder`` and returns
    the state to start from (``{"step": 0, ...}`` for a fresh run)."""
    state: dict[str, Any] = {"step": 0, "train_wall_seconds": 0.0, "train_cpu_seconds": 0.0}
    if resume:
        state = load_checkpoint(folder, modules, ema, optimizer)
        _check_resumable(state, stage_config, stage)
    elif (folder / CHECKPOINTS / LATEST).exists():
        raise DiffinvError(f"{folder} already holds a checkpoint; pass --resume or choose another --work")
    folder.mkdir(parents=True, exist_ok=True)
    return state


@dataclass(frozen=True)
class StageRun:
    """What :func:`run_stage` did: it trained from step ``start_step`` to step ``step``; ``state`` is the final
    snapshot (what a checkpoint's ``state.json`` holds then) and ``clock`` the stage's clock."""

    start_step: int
    step: int
    state: dict[str, Any]
    clock: Clock


def run_stage(
    stage: str,
    folder: Path,
    modules: Mapping[str, nn.Module],
    ema: EMA,
    optimizer: torch.optim.Optimizer,
    stage_config: Any,
    seed: int,
    state: Mapping[str, Any],
    compute_loss: Callable[[int], tuple[Tensor, dict[str, float]]],
    *,
    minutes: float | None = None,
    progress: bool = True,
    loss_ema_weight: float = 0.02,
    clip_parameters: Iterable[Tensor] | None = None,
    after_step: Callable[[int, Clock], None] | None = None,
    start_wall: float | None = None,
) -> StageRun:
    """The optimisation loop of a training stage, from ``state`` (see :func:`restore_stage`) to
    ``stage_config.steps``.

    Step ``k`` sets every param group's LR to :func:`learning_rate` × its ``"lr_scale"`` (default 1), calls
    ``compute_loss(k)`` (the scalar loss of batch ``k`` and numbers shown in the progress bar), back-propagates,
    clips the gradient norm of ``clip_parameters`` (default: the modules' parameters; their order is the order of
    the norm's sum, so it is kept per stage) to ``stage_config.grad_clip``, steps the optimizer and the EMA, then
    calls ``after_step(k + 1, clock)``. It checkpoints every ``checkpoint_every`` steps, at the end, when SIGTERM
    or the time budget (``minutes``, else ``stage_config.max_minutes``; counted from ``start_wall``, default now)
    stops it, and on Ctrl-C (re-raised).

    ``loss_ema_weight`` is the weight of a new loss in the saved loss EMA, whose decay is ``1 - loss_ema_weight``
    (given this way round because ``1 - 0.02 == 0.98`` in floating point while ``1 - 0.98 != 0.02``).
    """
    budget = stage_config.max_minutes if minutes is None else minutes
    wall = time.perf_counter() if start_wall is None else start_wall
    clock = Clock(state["train_wall_seconds"], state["train_cpu_seconds"], budget * 60.0, start_wall=wall)
    start_step = step = int(state["step"])
    loss_ema: float | None = state.get("loss_ema")
    flag = StopFlag()
    if clip_parameters is None:
        clip_parameters = [p for module in modules.values() for p in module.parameters()]
    params = list(clip_parameters)

    def snapshot() -> dict[str, Any]:
        return {"step": step, "seed": seed, "loss_ema": loss_ema, "ema_updates": ema.updates,
                "config": to_json(stage_config), **clock.totals()}  # fmt: skip

    steps = stage_config.steps
    bar = tqdm(total=steps, initial=step, desc=stage, disable=not progress, dynamic_ncols=True, mininterval=5)
    with sigterm_sets(flag):
        try:
            while step < steps and not flag:
                lr = learning_rate(step, stage_config.lr, steps, stage_config.warmup_steps, stage_config.min_lr_ratio)
                for group in optimizer.param_groups:
                    group["lr"] = lr * group.get("lr_scale", 1.0)
                loss, terms = compute_loss(step)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, stage_config.grad_clip)
                optimizer.step()
                ema.update()
                step += 1
                value = float(loss.detach())
                loss_ema = value if loss_ema is None else (1.0 - loss_ema_weight) * loss_ema + loss_ema_weight * value
                bar.update(1)
                bar.set_postfix(loss=f"{loss_ema:.4f}", **{k: f"{v:.4f}" for k, v in terms.items()}, refresh=False)
                if clock.over_budget():
                    flag.reason = f"time budget of {budget:g} min"
                if step % stage_config.checkpoint_every == 0 or step == steps or flag:
                    save_checkpoint(folder, modules, ema, optimizer, snapshot())
                if after_step is not None:
                    after_step(step, clock)
        except KeyboardInterrupt:
            if step > start_step:
                save_checkpoint(folder, modules, ema, optimizer, snapshot())
            bar.close()
            raise
    bar.close()
    if flag:
        print(f"{stage}: stopped at step {step}/{steps} ({flag.reason}); --resume continues", flush=True)
    return StageRun(start_step, step, snapshot(), clock)


def _optimizer(modules: Sequence[nn.Module], lr: float, weight_decay: float) -> torch.optim.AdamW:
    """AdamW; weight decay on matrices and kernels only (not biases, norms, or embedding tables)."""
    decay, no_decay = [], []
    for module in modules:
        embeddings = {id(p) for m in module.modules() if isinstance(m, nn.Embedding) for p in m.parameters()}
        for p in module.parameters():
            (decay if p.ndim > 1 and id(p) not in embeddings else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=lr)


def _n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# --------------------------------------------------------------------------------------------------------
# Models
# --------------------------------------------------------------------------------------------------------


def build_vae(config: VAEModelConfig) -> AutoencoderKL:
    """A freshly initialised AutoencoderKL: ``(B, 3, S, S)`` in [-1, 1] ↔ ``(B, C, S/f, S/f)`` latents."""
    levels = len(config.block_out_channels)
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * levels,
        up_block_types=("UpDecoderBlock2D",) * levels,
        block_out_channels=config.block_out_channels,
        layers_per_block=config.layers_per_block,
        latent_channels=config.latent_channels,
        norm_num_groups=config.norm_num_groups,
        sample_size=config.image_size,
    )


def vae_factor(config: VAEModelConfig) -> int:
    """Downsampling factor of the VAE: ``2 ** (levels - 1)``."""
    return 2 ** (len(config.block_out_channels) - 1)


def build_tokenizer(config: TextModelConfig) -> CLIPTokenizer:
    """OpenAI CLIP's BPE tokenizer (EOS padding, as SD 1.x) with ``model_max_length = config.max_length``."""
    return CLIPTokenizer.from_pretrained(str(default_tokenizer_path()), model_max_length=config.max_length)


def build_text_encoder(config: TextModelConfig, tokenizer: CLIPTokenizer) -> CLIPTextModel:
    """A freshly initialised CLIPTextModel over the full CLIP vocabulary: ids ``(B, L)`` → ``(B, L, D)``."""
    return CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=config.hidden_size,
            intermediate_size=config.intermediate_size,
            num_hidden_layers=config.num_hidden_layers,
            num_attention_heads=config.num_attention_heads,
            max_position_embeddings=config.max_length,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )


def build_unet(config: UNetModelConfig, latent_channels: int, sample_size: int, cross_dim: int) -> UNet2DConditionModel:
    """A freshly initialised UNet: latents ``(B, C, h, w)``, timesteps ``(B,)``, text ``(B, L, D)`` → ε̂ ``(B, C,
    h, w)``."""
    if len(config.down_block_types) != len(config.block_out_channels) or len(config.up_block_types) != len(
        config.block_out_channels
    ):
        raise ValueError("UNetModelConfig: one down and one up block type per entry of block_out_channels")
    return UNet2DConditionModel(
        sample_size=sample_size,
        in_channels=latent_channels,
        out_channels=latent_channels,
        block_out_channels=config.block_out_channels,
        layers_per_block=config.layers_per_block,
        down_block_types=config.down_block_types,
        up_block_types=config.up_block_types,
        cross_attention_dim=cross_dim,
        attention_head_dim=config.attention_head_dim,
        norm_num_groups=config.norm_num_groups,
    )


def tokenize(tokenizer: CLIPTokenizer, texts: Sequence[str]) -> Tensor:
    """Token ids ``(B, L)``, EOS-padded/truncated to the tokenizer's ``model_max_length`` (as SD pipelines do)."""
    length = int(tokenizer.model_max_length)
    batch = tokenizer(list(texts), padding="max_length", max_length=length, truncation=True, return_tensors="pt")
    return batch.input_ids


def scheduler() -> DDIMScheduler:
    """DDIM with Stable Diffusion's training schedule (scaled-linear β from 0.00085 to 0.012), ε-prediction."""
    return DDIMScheduler(**SD_SCHEDULER_CONFIG, prediction_type="epsilon")


def psnr(a: Tensor, b: Tensor) -> Tensor:
    """Per-image PSNR in dB of ``(B, 3, H, W)`` images in [-1, 1], after 8-bit quantisation: ``(B,)``."""
    x = torch.from_numpy(to_uint8(a)).float() / 255.0
    y = torch.from_numpy(to_uint8(b)).float() / 255.0
    mse = ((x - y) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return 10.0 * torch.log10(1.0 / mse)


# --------------------------------------------------------------------------------------------------------
# Stage 1: VAE
# --------------------------------------------------------------------------------------------------------


def vae_loss(
    vae: AutoencoderKL, pixels: Tensor, config: VAETrainConfig, generator: torch.Generator
) -> tuple[Tensor, dict[str, float]]:
    """Reconstruction loss of a batch ``(B, 3, S, S)`` in [-1, 1] through a posterior sample.

    Returns the scalar loss and its terms (``l1``, ``mse``, ``grad``: L1 of the finite differences, ``kl`` per
    latent element).
    """
    posterior = vae.encode(pixels).latent_dist
    latents = posterior.sample(generator=generator)
    recon = vae.decode(latents).sample
    diff = recon - pixels
    l1 = diff.abs().mean()
    mse = diff.pow(2).mean()
    grad = (diff[..., :, 1:] - diff[..., :, :-1]).abs().mean() + (diff[..., 1:, :] - diff[..., :-1, :]).abs().mean()
    kl = posterior.kl().mean() / latents[0].numel()
    loss = config.l1_weight * l1 + config.mse_weight * mse + config.grad_weight * grad + config.kl_weight * kl
    terms = {"l1": l1, "mse": mse, "grad": grad, "kl": kl}
    return loss, {k: float(v.detach()) for k, v in terms.items()}


@torch.no_grad()
def encode_mean(vae: AutoencoderKL, pixels: Tensor, batch_size: int = 64) -> tuple[Tensor, Tensor]:
    """Posterior mean and std (unscaled) of ``(N, 3, S, S)`` pixels: two ``(N, C, h, w)`` tensors."""
    means, stds = [], []
    for start in range(0, pixels.shape[0], batch_size):
        dist = vae.encode(pixels[start : start + batch_size]).latent_dist
        means.append(dist.mean)
        stds.append(dist.std)
    return torch.cat(means), torch.cat(stds)


@torch.no_grad()
def round_trip(vae: AutoencoderKL, pixels: Tensor, batch_size: int = 64) -> Tensor:
    """Encode (posterior mean) and decode ``(N, 3, S, S)`` pixels in [-1, 1]: ``(N, 3, S, S)``."""
    out = []
    for start in range(0, pixels.shape[0], batch_size):
        out.append(vae.decode(vae.encode(pixels[start : start + batch_size]).latent_dist.mean).sample)
    return torch.cat(out).clamp(-1, 1)


def heldout_shapes(n: int, seed: int, size: int) -> Tensor:
    """Renders of the first ``n`` test-split scenes of ``seed``: ``(n, 3, size, size)`` in [-1, 1]."""
    return render_scenes([sample_scene(item_rng("test", seed, i), "test") for i in range(n)], size)


@torch.no_grad()
def evaluate_vae(vae: AutoencoderKL, n_shapes: int, seed: int, size: int) -> dict[str, float]:
    """Round-trip PSNR (mean of per-image dB, and dB of the pooled MSE) on held-out Shapes scenes and on the
    held-out photos' evaluation views (:func:`~diffinv.train.data.eval_photo_crops`)."""
    was_training = vae.training
    vae.eval()
    try:
        result: dict[str, float] = {}
        for name, pixels in (("shapes", heldout_shapes(n_shapes, seed, size)), ("photos", eval_photo_crops(size))):
            recon = round_trip(vae, pixels)
            per_image = psnr(recon, pixels)
            pooled_mse = (10 ** (-per_image / 10)).mean()
            result[f"psnr_{name}"] = round(float(per_image.mean()), 3)
            result[f"psnr_{name}_pooled"] = round(float(-10 * torch.log10(pooled_mse)), 3)
            result[f"psnr_{name}_min"] = round(float(per_image.min()), 3)
        return result
    finally:
        vae.train(was_training)


@torch.no_grad()
def measure_scaling_factor(vae: AutoencoderKL, config: VAETrainConfig, seed: int) -> float:
    """``1 / std`` of the posterior means of ``config.scale_images`` train-split Shapes renders (Rombach et al.)."""
    rng, _ = batch_rng(seed, VAE_STREAM, 10**9)  # a batch index training never reaches
    scenes = sample_train_scenes(rng, config.scale_images, config.object_probs)
    mean, _ = encode_mean(vae.eval(), render_scenes(scenes, config.model.image_size))
    return float(1.0 / mean.std())


def train_vae(
    config: MiniConfig, work: Path, *, resume: bool = False, minutes: float | None = None, progress: bool = True
) -> AutoencoderKL:
    """Stage 1: train the VAE into ``work/vae`` (checkpoints, ``final/``, ``eval.json``); returns the EMA VAE."""
    cfg = config.vae
    folder = work / "vae"
    torch.set_num_threads(config.num_threads)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed(config.seed, 0))
        vae = build_vae(cfg.model)
    modules = {"vae": vae}
    ema = EMA(modules, cfg.ema_decay)
    optimizer = _optimizer([vae], cfg.lr, cfg.weight_decay)
    state = restore_stage("vae", folder, modules, ema, optimizer, cfg, resume)

    def batch_loss(step: int) -> tuple[Tensor, dict[str, float]]:
        rng, generator = batch_rng(config.seed, VAE_STREAM, step)
        pixels = vae_batch(rng, cfg.batch_size, cfg.model.image_size, cfg.photo_fraction, cfg.object_probs, cfg.crop)
        return vae_loss(vae, pixels, cfg, generator)

    print(f"vae: {_n_params(vae):,} parameters, factor {vae_factor(cfg.model)}, from step {state['step']}", flush=True)
    vae.train()
    run = run_stage(
        "vae", folder, modules, ema, optimizer, cfg, config.seed, state, batch_loss, minutes=minutes, progress=progress
    )
    with torch.random.fork_rng(devices=[]):
        averaged = build_vae(cfg.model)
    ema.copy_to({"vae": averaged})
    averaged.eval()
    factor = measure_scaling_factor(averaged, cfg, config.seed)
    averaged.register_to_config(scaling_factor=factor)
    scores = evaluate_vae(averaged, cfg.eval_images, cfg.eval_seed, cfg.model.image_size)
    record = {**run.state, "complete": run.step >= cfg.steps, "scaling_factor": factor, "eval": scores}
    final = folder / FINAL
    if final.exists():
        shutil.rmtree(final)
    averaged.save_pretrained(final, safe_serialization=True)
    write_json(folder / "eval.json", record)
    print(f"vae: step {run.step}, scaling_factor {factor:.4f}, " + ", ".join(f"{k} {v}" for k, v in scores.items()))
    return averaged


def load_final_vae(work: Path) -> AutoencoderKL:
    folder = work / "vae" / FINAL
    if not (folder / "config.json").is_file():
        raise DiffinvError(f"{folder}: no trained VAE; run the vae stage first")
    return AutoencoderKL.from_pretrained(folder).eval()


# --------------------------------------------------------------------------------------------------------
# Stage 2: text encoder + UNet
# --------------------------------------------------------------------------------------------------------


@dataclass
class LatentPool:
    """Pre-encoded training scenes: ``mean``/``std`` ``(N, C, h, w)`` already multiplied by ``scaling_factor``."""

    mean: Tensor
    std: Tensor
    scenes: list[Scene]

    def sample(self, index: np.ndarray, generator: torch.Generator) -> Tensor:
        """Posterior samples ``(B, C, h, w)`` of the scenes ``index``."""
        idx = torch.from_numpy(index)
        mean, std = self.mean[idx], self.std[idx]
        return mean + std * torch.randn(mean.shape, generator=generator)


def _file_digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def build_pool(vae: AutoencoderKL, config: MiniConfig, work: Path, progress: bool = True) -> LatentPool:
    """Render and encode ``pool_size`` train-split scenes with the frozen VAE; cached in ``work/unet/pool.*`` and
    reused while the VAE weights and pool settings are unchanged."""
    cfg = config.unet
    size = config.vae.model.image_size
    weights = work / "vae" / FINAL / "diffusion_pytorch_model.safetensors"
    key = {
        "vae": _file_digest(weights) if weights.is_file() else "in-memory",
        "pool_size": cfg.pool_size,
        "object_probs": list(cfg.object_probs),
        "seed": config.seed,
        "size": size,
    }
    tensors, meta = work / "unet" / "pool.safetensors", work / "unet" / "pool.json"
    if tensors.is_file() and meta.is_file():
        saved = json.loads(meta.read_text())
        if saved.get("key") == key:
            data = load_file(tensors)
            scenes = [Scene.from_dict(s) for s in saved["scenes"]]
            return LatentPool(data["mean"], data["std"], scenes)
    rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(POOL_STREAM,)))
    scenes = sample_train_scenes(rng, cfg.pool_size, cfg.object_probs)
    factor = float(vae.config.scaling_factor)
    means, stds = [], []
    chunk = 256
    for start in tqdm(range(0, len(scenes), chunk), desc="encode pool", disable=not progress, mininterval=5):
        mean, std = encode_mean(vae, render_scenes(scenes[start : start + chunk], size))
        means.append(mean * factor)
        stds.append(std * factor)
    pool = LatentPool(torch.cat(means), torch.cat(stds), scenes)
    tensors.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(tensors, lambda tmp: save_file({"mean": pool.mean.contiguous(), "std": pool.std.contiguous()}, tmp))
    write_json(meta, {"key": key, "scenes": [s.to_dict() for s in scenes]})
    return pool


def min_snr_weights(alphas_cumprod: Tensor, timesteps: Tensor, gamma: float, floor: float = 0.0) -> Tensor:
    """Per-sample ε-loss weights ``clamp(SNR, floor, γ) / SNR`` ``(B,)``.

    The ε-loss equals SNR × the x0-loss, so this weights the x0-error by ``clamp(SNR, floor, γ)``: min-SNR-γ caps
    the low-noise steps (``gamma <= 0``: no cap) and ``floor`` lifts the high-noise steps, where the layout is
    decided from the caption alone (``floor <= 0``: no lift).
    """
    alpha = alphas_cumprod[timesteps].float()
    snr = alpha / (1 - alpha)
    target = snr
    if gamma > 0:
        target = target.clamp(max=gamma)
    if floor > 0:
        target = target.clamp(min=floor)
    return target / snr


def sample_timesteps(batch: int, total: int, high_fraction: float, high_min: int, generator: torch.Generator) -> Tensor:
    """Training timesteps ``(B,)``: uniform on ``[0, total)``, except that about ``high_fraction`` of them are
    uniform on ``[high_min, total)`` (more high-noise steps, where only the caption says where objects go)."""
    uniform = torch.randint(0, total, (batch,), generator=generator)
    if high_fraction <= 0:
        return uniform
    high = torch.randint(high_min, total, (batch,), generator=generator)
    return torch.where(torch.rand(batch, generator=generator) < high_fraction, high, uniform)


def diffusion_loss(
    unet: UNet2DConditionModel,
    text_encoder: CLIPTextModel,
    latents: Tensor,
    input_ids: Tensor,
    alphas_cumprod: Tensor,
    gamma: float,
    generator: torch.Generator,
    floor: float = 0.0,
    high_noise_fraction: float = 0.0,
    high_noise_min_t: int = 0,
) -> Tensor:
    """ε-prediction loss of clean latents ``(B, C, h, w)`` with captions ``(B, L)``, weighted by
    :func:`min_snr_weights`, at timesteps drawn by :func:`sample_timesteps`."""
    batch = latents.shape[0]
    timesteps = sample_timesteps(batch, alphas_cumprod.numel(), high_noise_fraction, high_noise_min_t, generator)
    noise = torch.randn(latents.shape, generator=generator)
    alpha = alphas_cumprod[timesteps].float().view(batch, 1, 1, 1)
    noisy = alpha.sqrt() * latents + (1 - alpha).sqrt() * noise
    embeds = text_encoder(input_ids)[0]
    pred = unet(noisy, timesteps, encoder_hidden_states=embeds).sample
    per_sample = (pred - noise).pow(2).flatten(1).mean(1)
    return (per_sample * min_snr_weights(alphas_cumprod, timesteps, gamma, floor)).mean()


@dataclass
class Parts:
    """The pieces of a pipeline the evaluations need (all in eval mode)."""

    vae: AutoencoderKL
    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    unet: UNet2DConditionModel


def eval_scenes(kind: str, n: int, seed: int) -> list[Scene]:
    """``n`` held-out (test-split) scenes with ``kind`` = ``"single"`` (one object) or ``"double"`` (two)."""
    n_objects = {"single": 1, "double": 2}[kind]
    return [sample_scene(item_rng("test", seed + n_objects, i), "test", n_objects=n_objects) for i in range(n)]


def eval_captions(scenes: Sequence[Scene], seed: int) -> list[str]:
    """A seeded random caption variant per scene."""
    return [caption(s, item_rng("test", seed, i, "caption")) for i, s in enumerate(scenes)]


@torch.no_grad()
def generate_batch(
    parts: Parts,
    prompts: Sequence[str],
    seeds: Sequence[int],
    *,
    num_inference_steps: int = 50,
    guidance_scale: float = 7.5,
    batch_size: int = 64,
) -> np.ndarray:
    """Batched version of :func:`diffinv.api.generate` (same DDIM sampler and per-image initial noise from
    ``torch.Generator().manual_seed(seed)``): uint8 ``(N, S, S, 3)``."""
    denoiser = Denoiser(parts.unet, Schedule.from_config(scheduler().config, num_inference_steps))
    channels, side = parts.unet.config.in_channels, parts.unet.config.sample_size
    images = []
    for start in range(0, len(prompts), batch_size):
        chunk = list(prompts[start : start + batch_size])
        noise = torch.cat(
            [
                torch.randn((1, channels, side, side), generator=torch.Generator().manual_seed(int(s)))
                for s in seeds[start : start + batch_size]
            ]
        )
        cond = parts.text_encoder(tokenize(parts.tokenizer, chunk))[0]
        uncond = parts.text_encoder(tokenize(parts.tokenizer, [""] * len(chunk)))[0]
        latents = noise
        for i in range(len(denoiser.schedule)):
            latents = denoiser.step(latents, denoiser.guided_epsilon(latents, i, cond, uncond, guidance_scale), i)
        pixels = parts.vae.decode(latents / parts.vae.config.scaling_factor).sample
        images.append(to_uint8(pixels))
    return np.concatenate(images)


def load_probe(path: str | Path | None) -> Any | None:
    """The Shapes probe (``path``, else the shipped one), or ``None`` when unavailable."""
    try:
        from diffinv.shapes.probe import DEFAULT_PATH, ShapesProbe
    except ImportError:
        return None
    folder = Path(path) if path is not None else DEFAULT_PATH
    if not (folder / "config.json").is_file():
        return None
    return ShapesProbe.from_pretrained(folder)


def score_images(images: np.ndarray, truths: Sequence[Scene], probe: Any) -> dict[str, float]:
    """Mean probe agreement (background, shape, color, size, position, all) of generated images with the scenes
    their captions describe."""
    from diffinv.shapes.probe import mean_agreement, read_scenes

    preds = read_scenes(images, probe)
    return {k: round(v, 4) for k, v in mean_agreement(preds, list(truths)).items()}


def evaluate_generation(
    parts: Parts, probe: Any, n: int, seed: int, config: MiniConfig, *, batch_size: int = 64
) -> tuple[dict[str, dict[str, float]], dict[str, np.ndarray]]:
    """Probe scores of batched generations on ``n`` single- and ``n`` two-object held-out captions."""
    results, images = {}, {}
    for kind in ("single", "double"):
        scenes = eval_scenes(kind, n, seed)
        prompts = eval_captions(scenes, seed)
        seeds = [seed * 100_003 + i for i in range(n)]
        generated = generate_batch(
            parts,
            prompts,
            seeds,
            num_inference_steps=config.num_inference_steps,
            guidance_scale=config.guidance_scale,
            batch_size=batch_size,
        )
        images[kind] = generated
        results[kind] = score_images(generated, scenes, probe) if probe is not None else {}
    return results, images


def save_grid(images: np.ndarray, path: Path, columns: int = 8) -> None:
    """Save uint8 ``(N, S, S, 3)`` images as one PNG grid."""
    from PIL import Image

    n, s = images.shape[0], images.shape[1]
    rows = math.ceil(n / columns)
    grid = np.full((rows * s, columns * s, 3), 255, dtype=np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        grid[r * s : (r + 1) * s, c * s : (c + 1) * s] = image
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(grid).save(path)


class CaptionHeads(nn.Module):
    """Linear heads ``(B, L, D)`` → ``{name: (B, L, n)}`` (cell heads ``(B, L, 9, n / 9)``) over
    :data:`~diffinv.train.data.CAPTION_HEADS`; used only by the text stage and then discarded."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.heads = nn.ModuleDict({name: nn.Linear(hidden_size, n) for name, n in CAPTION_HEADS.items()})

    def forward(self, hidden: Tensor) -> dict[str, Tensor]:
        out = {}
        for name, head in self.heads.items():
            logits = head(hidden)
            out[name] = logits.unflatten(-1, (9, -1)) if name.startswith("cell") else logits
        return out


def caption_loss(logits: Mapping[str, Tensor], targets: Mapping[str, Tensor]) -> Tensor:
    """Sum over the heads of the mean cross-entropy of their trained positions."""
    total = torch.zeros(())
    for name, target in targets.items():
        if (target != IGNORE).any():
            total = total + nn.functional.cross_entropy(
                logits[name].flatten(0, -2), target.flatten(), ignore_index=IGNORE
            )
    return total


@torch.no_grad()
def caption_accuracy(logits: Mapping[str, Tensor], targets: Mapping[str, Tensor]) -> dict[str, float]:
    """Per-head accuracy over the trained positions (the cell heads over their non-empty cells for colour)."""
    scores = {}
    for name, target in targets.items():
        mask = target != IGNORE
        if mask.any():
            hits = logits[name].argmax(-1)[mask] == target[mask]
            scores[name] = round(float(hits.float().mean()), 4)
    return scores


def _text_batch(tokenizer: CLIPTokenizer, texts: Sequence[str]) -> tuple[Tensor, dict[str, Tensor]]:
    return tokenize(tokenizer, texts), caption_targets(texts, int(tokenizer.model_max_length))


def train_text(
    config: MiniConfig, work: Path, *, resume: bool = False, minutes: float | None = None, progress: bool = True
) -> CLIPTextModel:
    """Stage 2: pretrain the text encoder into ``work/text`` (see :class:`TextTrainConfig`); returns it (EMA)."""
    cfg = config.text
    folder = work / "text"
    torch.set_num_threads(config.num_threads)
    tokenizer = build_tokenizer(config.unet.text)

    def fresh() -> tuple[CLIPTextModel, CaptionHeads]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed(config.seed, 1))
            text_encoder = build_text_encoder(config.unet.text, tokenizer)
            torch.manual_seed(init_seed(config.seed, 3))
            heads = CaptionHeads(config.unet.text.hidden_size)
        return text_encoder, heads

    text_encoder, heads = fresh()
    modules: dict[str, nn.Module] = {"text_encoder": text_encoder, "heads": heads}
    ema = EMA(modules, cfg.ema_decay)
    optimizer = _optimizer([text_encoder, heads], cfg.lr, cfg.weight_decay)
    state = restore_stage("text", folder, modules, ema, optimizer, cfg, resume)

    def batch_loss(step: int) -> tuple[Tensor, dict[str, float]]:
        rng, _ = batch_rng(config.seed, TEXT_STREAM, step)
        scenes = sample_train_scenes(rng, cfg.batch_size, cfg.object_probs)
        ids, targets = _text_batch(tokenizer, [caption(s, rng) for s in scenes])
        return caption_loss(heads(text_encoder(ids)[0]), targets), {}

    print(f"text: {_n_params(text_encoder):,} parameters, from step {state['step']}", flush=True)
    text_encoder.train()
    run = run_stage(
        "text", folder, modules, ema, optimizer, cfg, config.seed, state, batch_loss, minutes=minutes, progress=progress
    )
    averaged, averaged_heads = fresh()
    ema.copy_to({"text_encoder": averaged, "heads": averaged_heads})
    averaged.eval()
    scenes = [sample_scene(item_rng("test", cfg.eval_seed, i), "test") for i in range(cfg.eval_captions)]
    texts = [caption(s, item_rng("test", cfg.eval_seed, i, "caption")) for i, s in enumerate(scenes)]
    ids, targets = _text_batch(tokenizer, texts)
    with torch.no_grad():
        scores = caption_accuracy(averaged_heads(averaged(ids)[0]), targets)
    final = folder / FINAL
    if final.exists():
        shutil.rmtree(final)
    averaged.save_pretrained(final / "text_encoder", safe_serialization=True)
    tokenizer.save_pretrained(final / "tokenizer")
    write_json(folder / "eval.json", {**run.state, "complete": run.step >= cfg.steps, "accuracy": scores})
    print(f"text: step {run.step}, held-out caption parsing accuracy {json.dumps(scores)}", flush=True)
    return averaged


def load_text_encoder(work: Path) -> CLIPTextModel:
    """The exported text encoder of the ``text`` stage (eval mode)."""
    path = work / "text" / FINAL / "text_encoder"
    if not (path / "config.json").is_file():
        raise DiffinvError(f"{work}: no pretrained text encoder; run the text stage first")
    return CLIPTextModel.from_pretrained(path).eval()


def train_unet(
    config: MiniConfig,
    work: Path,
    *,
    resume: bool = False,
    minutes: float | None = None,
    progress: bool = True,
    probe_path: str | Path | None = None,
) -> Parts:
    """Stage 2: train the text encoder and the UNet into ``work/unet``; returns the EMA parts (eval mode)."""
    cfg = config.unet
    folder = work / "unet"
    torch.set_num_threads(config.num_threads)
    clock_start = time.perf_counter()
    vae = load_final_vae(work)
    latent_channels = int(vae.config.latent_channels)
    side = config.vae.model.image_size // (2 ** (len(vae.config.block_out_channels) - 1))
    tokenizer = build_tokenizer(cfg.text)
    pretrained = load_text_encoder(work).state_dict()

    def fresh() -> tuple[CLIPTextModel, UNet2DConditionModel]:
        text_encoder = build_text_encoder(cfg.text, tokenizer)
        text_encoder.load_state_dict(pretrained)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed(config.seed, 2))
            unet = build_unet(cfg.model, latent_channels, side, cfg.text.hidden_size)
        return text_encoder, unet

    text_encoder, unet = fresh()
    frozen_text = cfg.text_lr_scale <= 0
    text_encoder.requires_grad_(not frozen_text)
    modules: dict[str, nn.Module] = {"text_encoder": text_encoder, "unet": unet}
    ema = EMA(modules, cfg.ema_decay)
    optimizer = _optimizer([unet], cfg.lr, cfg.weight_decay)
    if not frozen_text:
        for group in _optimizer([text_encoder], cfg.lr, cfg.weight_decay).param_groups:
            optimizer.add_param_group({**group, "lr_scale": cfg.text_lr_scale})
    state = restore_stage("unet", folder, modules, ema, optimizer, cfg, resume)
    pool = build_pool(vae, config, work, progress)
    alphas_cumprod = scheduler().alphas_cumprod.to(torch.float64)
    probe = load_probe(probe_path) if cfg.eval_every_minutes > 0 else None
    eval_text_encoder, eval_unet = fresh()
    eval_parts = Parts(vae=vae, text_encoder=eval_text_encoder, tokenizer=tokenizer, unet=eval_unet)
    next_eval = cfg.eval_every_minutes * 60.0

    def batch_loss(step: int) -> tuple[Tensor, dict[str, float]]:
        rng, generator = batch_rng(config.seed, UNET_STREAM, step)
        index = rng.integers(len(pool.scenes), size=cfg.batch_size)
        latents = pool.sample(index, generator)
        captions = sample_captions([pool.scenes[i] for i in index], rng, cfg.empty_caption_prob)
        loss = diffusion_loss(
            unet,
            text_encoder,
            latents,
            tokenize(tokenizer, captions),
            alphas_cumprod,
            cfg.snr_gamma,
            generator,
            cfg.snr_floor,
            cfg.high_noise_fraction,
            cfg.high_noise_min_t,
        )
        return loss, {}

    def periodic_eval(step: int, clock: Clock) -> None:
        ema.copy_to({"text_encoder": eval_parts.text_encoder, "unet": eval_parts.unet})
        eval_parts.text_encoder.eval()
        eval_parts.unet.eval()
        started = time.perf_counter()
        scores, images = evaluate_generation(eval_parts, probe, cfg.eval_prompts, cfg.eval_seed, config)
        record = {"step": step, **clock.totals(), "eval_seconds": round(time.perf_counter() - started, 1), **scores}
        with open(folder / "eval.jsonl", "a") as log:
            log.write(json.dumps(record) + "\n")
        save_grid(images["single"][:32], folder / "samples" / f"step-{step:06d}.png")
        tqdm.write(f"unet eval at step {step}: {json.dumps(scores)}")

    def after_step(step: int, clock: Clock) -> None:
        nonlocal next_eval
        if probe is not None and next_eval > 0 and clock.run_seconds() >= next_eval and step < cfg.steps:
            periodic_eval(step, clock)
            next_eval = clock.run_seconds() + cfg.eval_every_minutes * 60.0

    print(
        f"unet: {_n_params(unet):,} + text encoder {_n_params(text_encoder):,} parameters, latents "
        f"{latent_channels}x{side}x{side}, context {tokenizer.model_max_length}, pool {len(pool.scenes)}, "
        f"from step {state['step']}",
        flush=True,
    )
    text_encoder.train(not frozen_text)
    unet.train()
    run = run_stage(
        "unet",
        folder,
        modules,
        ema,
        optimizer,
        cfg,
        config.seed,
        state,
        batch_loss,
        minutes=minutes,
        progress=progress,
        loss_ema_weight=0.01,
        clip_parameters=[p for g in optimizer.param_groups for p in g["params"]],
        after_step=after_step,
        start_wall=clock_start,
    )
    ema.copy_to({"text_encoder": eval_parts.text_encoder, "unet": eval_parts.unet})
    eval_parts.text_encoder.eval()
    eval_parts.unet.eval()
    final = folder / FINAL
    if final.exists():
        shutil.rmtree(final)
    eval_parts.unet.save_pretrained(final / "unet", safe_serialization=True)
    eval_parts.text_encoder.save_pretrained(final / "text_encoder", safe_serialization=True)
    tokenizer.save_pretrained(final / "tokenizer")
    write_json(folder / "state.json", {**run.state, "complete": run.step >= cfg.steps})
    if probe is not None and run.step > run.start_step:
        periodic_eval(run.step, run.clock)
    return eval_parts


# --------------------------------------------------------------------------------------------------------
# Stage 3: assemble; stage 4: evaluate
# --------------------------------------------------------------------------------------------------------


def load_parts(work: Path) -> Parts:
    """The exported EMA models of the ``vae`` and ``unet`` stages (eval mode)."""
    final = work / "unet" / FINAL
    if not (final / "unet" / "config.json").is_file():
        raise DiffinvError(f"{final}: no trained UNet; run the unet stage first")
    return Parts(
        vae=load_final_vae(work),
        text_encoder=CLIPTextModel.from_pretrained(final / "text_encoder").eval(),
        tokenizer=CLIPTokenizer.from_pretrained(final / "tokenizer"),
        unet=UNet2DConditionModel.from_pretrained(final / "unet").eval(),
    )


def assemble(config: MiniConfig, work: Path, out: Path | None = None) -> Path:
    """Stage 3: write the diffusers ``StableDiffusionPipeline`` folder (fp16 safetensors) to ``out``.

    The folder is written beside ``out`` and swapped in at the end; it also carries :data:`TRAINING_RECORD`.
    """
    out = Path(out) if out is not None else default_output()
    parts = load_parts(work)
    pipe = StableDiffusionPipeline(
        vae=parts.vae,
        text_encoder=parts.text_encoder,
        tokenizer=parts.tokenizer,
        unet=parts.unet,
        scheduler=scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.to(torch.float16)
    staging = out.with_name(out.name + ".tmp")
    if staging.exists():
        shutil.rmtree(staging)
    pipe.save_pretrained(staging, safe_serialization=True)
    record: dict[str, Any] = {"config": config.to_dict()}
    for stage, name in (("vae", "eval.json"), ("unet", "state.json")):
        path = work / stage / name
        if path.is_file():
            record[stage] = json.loads(path.read_text())
    write_json(staging / TRAINING_RECORD, record)
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    size = weights_megabytes(out)
    print(f"assemble: wrote {out} ({size:.2f} MB of safetensors)")
    return out


def weights_megabytes(folder: Path) -> float:
    """Total size of the ``.safetensors`` files under ``folder``, in MB (10^6 bytes)."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*.safetensors")) / 1e6


@dataclass(frozen=True)
class EvalSet:
    """One caption set of :func:`evaluate_pipeline`: held-out scenes, their captions, the generated images (uint8
    ``(N, S, S, 3)``), what the probe reads from them (``None`` without a probe) and the per-image seconds."""

    kind: str
    scenes: list[Scene]
    captions: list[str]
    images: np.ndarray
    reads: list[Scene] | None
    seconds: list[float]


@dataclass(frozen=True)
class PipelineEval:
    """Result of :func:`evaluate_pipeline`: ``scores`` (JSON-ready, written to ``eval.json``) and the sets."""

    scores: dict[str, Any]
    sets: tuple[EvalSet, ...]


def evaluate_pipeline(
    config: MiniConfig,
    folder: Path,
    n_prompts: int,
    probe_path: str | Path | None = None,
    seed: int = 1234,
    grid_dir: Path | None = None,
) -> PipelineEval:
    """Stage 4: score an assembled pipeline folder as users load it (fp32 from the fp16 files).

    Scores: load seconds, weight MB, VAE PSNR (held-out Shapes and photos), seconds per 50-step image
    (:func:`diffinv.api.generate`, batch 1) and probe agreement on ``n_prompts`` single- and two-object held-out
    captions generated one by one with :func:`diffinv.api.generate`.
    """
    from diffinv.api import generate
    from diffinv.pipelines import load_pipeline
    from diffinv.shapes.probe import mean_agreement, read_scenes

    started = time.perf_counter()
    pipe = load_pipeline(str(folder))
    load_seconds = time.perf_counter() - started
    result: dict[str, Any] = {"load_seconds": round(load_seconds, 3), "weights_mb": round(weights_megabytes(folder), 3)}
    result["vae"] = evaluate_vae(pipe.vae, config.vae.eval_images, config.vae.eval_seed, config.vae.model.image_size)
    probe = load_probe(probe_path)
    sets = []
    for kind in ("single", "double"):
        scenes = eval_scenes(kind, n_prompts, seed)
        prompts = eval_captions(scenes, seed)
        images, timings = [], []
        for i, prompt in enumerate(tqdm(prompts, desc=f"generate {kind}", mininterval=5)):
            t0 = time.perf_counter()
            image = generate(
                pipe,
                prompt,
                num_inference_steps=config.num_inference_steps,
                guidance_scale=config.guidance_scale,
                generator=torch.Generator().manual_seed(seed * 100_003 + i),
                output_type="np",
            )
            timings.append(time.perf_counter() - t0)
            images.append((np.asarray(image)[0] * 255).round().astype(np.uint8))
        stacked = np.stack(images)
        if grid_dir is not None:
            save_grid(stacked[:64], Path(grid_dir) / f"eval_{kind}.png")
        reads = read_scenes(stacked, probe) if probe is not None else None
        if reads is not None:
            result[kind] = {k: round(v, 4) for k, v in mean_agreement(reads, scenes).items()}
        sets.append(EvalSet(kind, scenes, prompts, stacked, reads, timings))
    result["seconds_per_image"] = round(float(np.median([t for s in sets for t in s.seconds])), 3)
    result["threads"] = torch.get_num_threads()
    result["n_prompts"] = n_prompts
    return PipelineEval(result, tuple(sets))


# --------------------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m diffinv.train.mini", description=__doc__.splitlines()[0])
    parser.add_argument("stage", choices=STAGES, help="vae, text, unet, assemble, eval, or all (all but eval)")
    parser.add_argument("--work", type=Path, required=True, help="run folder (config, stage folders, checkpoints)")
    parser.add_argument("--config", type=Path, help="JSON file of MiniConfig overrides (nested objects allowed)")
    parser.add_argument("--seed", type=int, help="seed of the run (default 0)")
    parser.add_argument("--vae-steps", type=int, help=f"VAE optimisation steps (default {VAETrainConfig.steps})")
    parser.add_argument("--unet-steps", type=int, help=f"UNet optimisation steps (default {UNetTrainConfig.steps})")
    parser.add_argument("--minutes", type=float, help="wall-time cap of each training stage of this invocation")
    parser.add_argument("--resume", action="store_true", help="continue the stages from their newest checkpoints")
    parser.add_argument("--out", type=Path, help="pipeline folder of assemble/eval (default: assets/models/mini)")
    parser.add_argument("--probe", type=Path, help="probe folder for the evaluations (default: the shipped probe)")
    parser.add_argument("--eval-prompts", type=int, default=100, help="captions per set of the eval stage")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def resolve_config(args: argparse.Namespace) -> MiniConfig:
    """Config of ``--work``: the saved one (or the defaults), updated by ``--config`` and the flags; saved back."""
    path = args.work / CONFIG_NAME
    data: dict[str, Any] = MiniConfig().to_dict()
    if path.is_file():
        data = _merge(data, json.loads(path.read_text()))
    if args.config is not None:
        try:
            data = _merge(data, json.loads(Path(args.config).read_text()))
        except (OSError, ValueError) as exc:
            raise DiffinvError(f"{args.config}: cannot read the config ({exc})") from None
    flags: dict[str, Any] = {"seed": args.seed}
    if args.vae_steps is not None:
        flags["vae"] = {"steps": args.vae_steps}
    if args.unet_steps is not None:
        flags["unet"] = {"steps": args.unet_steps}
    data = _merge(data, {k: v for k, v in flags.items() if v is not None})
    try:
        config = MiniConfig.from_dict(data)
    except (TypeError, ValueError) as exc:
        raise DiffinvError(f"invalid training config: {exc}") from None
    if args.stage in ("vae", "text", "unet", "all"):
        args.work.mkdir(parents=True, exist_ok=True)
        write_json(path, config.to_dict())
    return config


def run(args: argparse.Namespace) -> dict[str, Any]:
    config = resolve_config(args)
    torch.set_num_threads(config.num_threads)
    progress = not args.no_progress
    result: dict[str, Any] = {}
    if args.stage in ("vae", "all"):
        train_vae(config, args.work, resume=args.resume, minutes=args.minutes, progress=progress)
        result["vae"] = json.loads((args.work / "vae" / "eval.json").read_text())
    if args.stage in ("text", "all"):
        resume = args.resume and (args.work / "text" / CHECKPOINTS / LATEST).is_file()
        train_text(config, args.work, resume=resume, minutes=args.minutes, progress=progress)
        result["text"] = json.loads((args.work / "text" / "eval.json").read_text())["accuracy"]
    if args.stage in ("unet", "all"):
        resume = args.resume and (args.work / "unet" / CHECKPOINTS / LATEST).is_file()
        train_unet(config, args.work, resume=resume, minutes=args.minutes, progress=progress, probe_path=args.probe)
    if args.stage in ("assemble", "all"):
        result["out"] = str(assemble(config, args.work, args.out))
    if args.stage == "eval":
        folder = args.out if args.out is not None else default_output()
        result = evaluate_pipeline(config, folder, args.eval_prompts, args.probe, grid_dir=args.work).scores
        write_json(args.work / "eval.json", result)
        print(json.dumps(result, indent=2))
    return result


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status."""
    args = build_parser().parse_args(argv)
    try:
        run(args)
    except DiffinvError as exc:
        print(f"python -m diffinv.train.mini: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())


__all__ = [
    "EMA",
    "EvalSet",
    "PipelineEval",
    "MiniConfig",
    "TextModelConfig",
    "TextTrainConfig",
    "UNetModelConfig",
    "UNetTrainConfig",
    "VAEModelConfig",
    "VAETrainConfig",
    "assemble",
    "evaluate_pipeline",
    "learning_rate",
    "main",
    "train_text",
    "train_unet",
    "train_vae",
]
