"""Stage 1 of the mini training (:mod:`diffinv.train.mini`): the VAE.

An :class:`~diffusers.AutoencoderKL` with Stable Diffusion's layout (4 latent channels, downsampling factor
``2 ** (len(block_out_channels) - 1)``) trained on Shapes renders and random crops of the scikit-image photos
(:func:`diffinv.train.data.vae_batch`) with L1 + MSE + image-gradient (edge) losses and a small KL term. The EMA of
the weights is exported to ``vae/final`` with a ``scaling_factor`` measured on Shapes latents (1 / std, as Rombach
et al. 2022), plus ``vae/eval.json`` (round-trip PSNR on held-out Shapes scenes and held-out photos).
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Final

import torch
from diffusers import AutoencoderKL
from torch import Tensor

from diffinv.errors import DiffinvError
from diffinv.loop.common import EMA, FINAL, batch_rng, init_seed, make_optimizer, n_params, write_json
from diffinv.loop.stage import restore_stage, run_stage
from diffinv.shapes.splits import item_rng, sample_scene
from diffinv.shapes.world import DEFAULT_WORLD
from diffinv.train.config import MiniConfig, VAEModelConfig, VAETrainConfig
from diffinv.train.data import eval_photo_crops, render_scenes, sample_train_scenes, to_uint8, vae_batch

VAE_STREAM: Final[int] = 0x766165  # "vae"
"""First spawn-key entry of the VAE stage's batch seeds."""


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


def psnr(a: Tensor, b: Tensor) -> Tensor:
    """Per-image PSNR in dB of ``(B, 3, H, W)`` images in [-1, 1], after 8-bit quantisation: ``(B,)``."""
    x = torch.from_numpy(to_uint8(a)).float() / 255.0
    y = torch.from_numpy(to_uint8(b)).float() / 255.0
    mse = ((x - y) ** 2).flatten(1).mean(1).clamp_min(1e-10)
    return 10.0 * torch.log10(1.0 / mse)


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


def heldout_shapes(n: int, seed: int, size: int, world: str = DEFAULT_WORLD) -> Tensor:
    """Renders of the first ``n`` test-split scenes of ``seed`` in ``world``: ``(n, 3, size, size)`` in [-1, 1]."""
    return render_scenes([sample_scene(item_rng("test", seed, i), "test", world=world) for i in range(n)], size)


@torch.no_grad()
def evaluate_vae(
    vae: AutoencoderKL, n_shapes: int, seed: int, size: int, world: str = DEFAULT_WORLD
) -> dict[str, float]:
    """Round-trip PSNR (mean of per-image dB, and dB of the pooled MSE) on held-out Shapes scenes and on the
    held-out photos' evaluation views (:func:`~diffinv.train.data.eval_photo_crops`)."""
    was_training = vae.training
    vae.eval()
    try:
        result: dict[str, float] = {}
        shapes = heldout_shapes(n_shapes, seed, size, world)
        for name, pixels in (("shapes", shapes), ("photos", eval_photo_crops(size))):
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
def measure_scaling_factor(vae: AutoencoderKL, config: VAETrainConfig, seed: int, world: str = DEFAULT_WORLD) -> float:
    """``1 / std`` of the posterior means of ``config.scale_images`` train-split Shapes renders (Rombach et al.)."""
    rng, _ = batch_rng(seed, VAE_STREAM, 10**9)  # a batch index training never reaches
    scenes = sample_train_scenes(rng, config.scale_images, config.object_probs, world=world)
    mean, _ = encode_mean(vae.eval(), render_scenes(scenes, config.model.image_size))
    return float(1.0 / mean.std())


def vae_stage_parts(cfg: VAETrainConfig, seed: int) -> tuple[dict[str, AutoencoderKL], EMA, torch.optim.AdamW]:
    """What the VAE stage trains, freshly initialised from ``seed`` (the global RNG untouched): its modules
    (``{"vae": vae}``, the checkpoint's key prefixes), their EMA and the optimizer; a checkpoint loads into them."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed(seed, 0))
        vae = build_vae(cfg.model)
    modules = {"vae": vae}
    return modules, EMA(modules, cfg.ema_decay), make_optimizer([vae], cfg.learning_rate, cfg.weight_decay)


def train_vae(
    config: MiniConfig, work: Path, *, resume: bool = False, minutes: float | None = None, progress: bool = True
) -> AutoencoderKL:
    """Stage 1: train the VAE into ``work/vae`` (checkpoints, ``final/``, ``eval.json``); returns the EMA VAE."""
    cfg = config.vae
    folder = work / "vae"
    torch.set_num_threads(config.num_threads)
    modules, ema, optimizer = vae_stage_parts(cfg, config.seed)
    vae = modules["vae"]
    state = restore_stage("vae", folder, modules, ema, optimizer, cfg, resume)

    def batch_loss(step: int) -> tuple[Tensor, dict[str, float]]:
        rng, generator = batch_rng(config.seed, VAE_STREAM, step)
        pixels = vae_batch(
            rng, cfg.batch_size, cfg.model.image_size, cfg.photo_fraction, cfg.object_probs, cfg.crop, config.world
        )
        return vae_loss(vae, pixels, cfg, generator)

    print(f"vae: {n_params(vae):,} parameters, factor {vae_factor(cfg.model)}, from step {state['step']}", flush=True)
    vae.train()
    run = run_stage(
        "vae", folder, modules, ema, optimizer, cfg, config.seed, state, batch_loss, minutes=minutes, progress=progress
    )
    with torch.random.fork_rng(devices=[]):
        averaged = build_vae(cfg.model)
    ema.copy_to({"vae": averaged})
    averaged.eval()
    factor = measure_scaling_factor(averaged, cfg, config.seed, config.world)
    averaged.register_to_config(scaling_factor=factor)
    scores = evaluate_vae(averaged, cfg.eval_images, cfg.eval_seed, cfg.model.image_size, config.world)
    record = {**run.state, "complete": run.step >= cfg.steps, "scaling_factor": factor, "eval": scores}
    final = folder / FINAL
    if final.exists():
        shutil.rmtree(final)
    averaged.save_pretrained(final, safe_serialization=True)
    write_json(folder / "eval.json", record)
    print(f"vae: step {run.step}, scaling_factor {factor:.4f}, " + ", ".join(f"{k} {v}" for k, v in scores.items()))
    return averaged


def load_final_vae(work: Path) -> AutoencoderKL:
    """The exported EMA VAE of the ``vae`` stage of ``work`` (eval mode)."""
    folder = work / "vae" / FINAL
    if not (folder / "config.json").is_file():
        raise DiffinvError(f"{folder}: no trained VAE; run the vae stage first")
    return AutoencoderKL.from_pretrained(folder).eval()
