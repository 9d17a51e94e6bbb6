"""Stage 3 of the mini training (:mod:`diffinv.train.mini`): the UNet.

A :class:`~diffusers.UNet2DConditionModel` trained on latents of a pool of pre-encoded train-split scenes
(:class:`LatentPool`; the VAE is frozen) with the pretrained text encoder (frozen by default, like SD's CLIP;
``text_lr_scale`` > 0 fine-tunes it): ε-prediction with Stable Diffusion's scaled-linear schedule, 10 % empty
captions (classifier-free guidance), min-SNR-γ loss weighting with a floor (:func:`min_snr_weights`), extra
high-noise timesteps (:func:`sample_timesteps`), AdamW with warm-up + cosine decay, and an EMA of the weights, which
is what gets exported to ``unet/final``. With a probe available, the EMA model is scored every
``eval_every_minutes`` (``unet/eval.jsonl``, :func:`diffinv.train.evaluate.evaluate_generation`).
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import numpy as np
import torch
from diffusers import AutoencoderKL, UNet2DConditionModel
from safetensors.torch import load_file, save_file
from torch import Tensor, nn
from tqdm import tqdm
from transformers import CLIPTextModel

from diffinv.io import atomic_write
from diffinv.loop.common import EMA, FINAL, Clock, batch_rng, init_seed, make_optimizer, n_params, write_json
from diffinv.loop.stage import restore_stage, run_stage
from diffinv.shapes.scene import Scene
from diffinv.shapes.world import DEFAULT_WORLD
from diffinv.train.config import MiniConfig, UNetModelConfig
from diffinv.train.data import render_scenes, sample_captions, sample_train_scenes
from diffinv.train.evaluate import evaluate_generation, load_probe, save_grid
from diffinv.train.parts import Parts, scheduler
from diffinv.train.text import build_text_encoder, build_tokenizer, load_text_encoder, tokenize
from diffinv.train.vae import encode_mean, load_final_vae

UNET_STREAM: Final[int] = 0x756E6574  # "unet"
"""First spawn-key entry of the UNet stage's batch seeds."""
POOL_STREAM: Final[int] = 0x706F6F6C  # "pool"
"""Spawn-key entry of the UNet stage's pool of scenes."""


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
        transformer_layers_per_block=config.transformer_layers_per_block,
    )


@dataclass
class LatentPool:
    """Pre-encoded training scenes: ``mean``/``std`` ``(N, C, h, w)`` already multiplied by ``scaling_factor``."""

    mean: Tensor
    std: Tensor
    scenes: list[Scene]

    def __post_init__(self) -> None:
        # One memory layout whether just encoded (the VAE may return channels-last tensors) or read from the cache:
        # convolutions round differently on another layout, and a resumed run must equal an uninterrupted one.
        self.mean, self.std = self.mean.contiguous(), self.std.contiguous()

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
    if cfg.color_weights or cfg.size_weights:  # absent from v1's key, so its cached pools stay valid
        key["color_weights"] = [list(pair) for pair in cfg.color_weights]
        key["size_weights"] = [list(pair) for pair in cfg.size_weights]
    if config.world != DEFAULT_WORLD:  # likewise absent from v1's and v2's
        key["world"] = config.world
    tensors, meta = work / "unet" / "pool.safetensors", work / "unet" / "pool.json"
    if tensors.is_file() and meta.is_file():
        saved = json.loads(meta.read_text())
        if saved.get("key") == key:
            data = load_file(tensors)
            scenes = [Scene.from_dict(s) for s in saved["scenes"]]
            return LatentPool(data["mean"], data["std"], scenes)
    rng = np.random.default_rng(np.random.SeedSequence(config.seed, spawn_key=(POOL_STREAM,)))
    scenes = sample_train_scenes(
        rng, cfg.pool_size, cfg.object_probs, cfg.color_weights, cfg.size_weights, world=config.world
    )
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


def train_unet(
    config: MiniConfig,
    work: Path,
    *,
    resume: bool = False,
    minutes: float | None = None,
    progress: bool = True,
    probe_path: str | Path | None = None,
) -> Parts:
    """Stage 3: train the UNet (and the text encoder if ``text_lr_scale`` > 0) into ``work/unet``; returns the EMA
    parts (eval mode)."""
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
    optimizer = make_optimizer([unet], cfg.learning_rate, cfg.weight_decay)
    if not frozen_text:
        for group in make_optimizer([text_encoder], cfg.learning_rate, cfg.weight_decay).param_groups:
            optimizer.add_param_group({**group, "lr_scale": cfg.text_lr_scale})
    state = restore_stage("unet", folder, modules, ema, optimizer, cfg, resume)
    pool = build_pool(vae, config, work, progress)
    alphas_cumprod = scheduler().alphas_cumprod.to(torch.float64)
    probe = load_probe(probe_path, config.world) if cfg.eval_every_minutes > 0 else None
    eval_text_encoder, eval_unet = fresh()
    eval_parts = Parts(vae=vae, text_encoder=eval_text_encoder, tokenizer=tokenizer, unet=eval_unet)
    next_eval = cfg.eval_every_minutes * 60.0

    def batch_loss(step: int) -> tuple[Tensor, dict[str, float]]:
        rng, generator = batch_rng(config.seed, UNET_STREAM, step)
        index = rng.integers(len(pool.scenes), size=cfg.batch_size)
        latents = pool.sample(index, generator)
        captions = sample_captions([pool.scenes[i] for i in index], rng, cfg.empty_caption_prob, cfg.caption_levels)
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
        f"unet: {n_params(unet):,} + text encoder {n_params(text_encoder):,} parameters, latents "
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
