"""``diffinv bench``: the reconstruction bench, one record per (image, method variant).

Each job inverts one image (or ``BenchConfig.batch_size`` images together) with one variant and scores the
reconstruction (:class:`Scorers`); the jobs run through the shared job loop (:func:`diffinv.bench.runner.run_jobs`:
resumable, shardable, locked) and :mod:`diffinv.bench.reconstruction_report` summarises the records.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from diffusers import StableDiffusionPipeline

from diffinv import api, metrics
from diffinv.bench.config import BenchConfig
from diffinv.bench.datasets import Sample
from diffinv.bench.runner import Job, json_float, run_jobs
from diffinv.bench.variants import Variant
from diffinv.errors import DiffinvError
from diffinv.inversion import Inversion


def job_key(sample: Sample, variant: Variant) -> str:
    return f"{sample.id}|{variant.label}"


class Scorers:
    """Metric back-ends loaded once per run; unavailable ones are kept as their reason string."""

    def __init__(self, config: BenchConfig) -> None:
        self.lpips = metrics.load_lpips(config.lpips_weights)
        self.clip = metrics.load_clip(config.clip_model)
        try:
            from diffinv.shapes import probe

            self.probe_module = probe
        except ImportError:
            self.probe_module = None
        self.probes: dict[str, Any] = {}
        """The probe of each world met so far, or the reason it is unavailable."""

    def score(self, pixels: torch.Tensor, target: torch.Tensor, sample: Sample) -> dict[str, Any]:
        result: dict[str, Any] = {
            "psnr": json_float(metrics.psnr(pixels, target)),
            "ssim": metrics.ssim(pixels, target),
            "lpips": self.lpips if isinstance(self.lpips, str) else self.lpips(pixels, target),
            "clip_i": self.clip if isinstance(self.clip, str) else self.clip.clip_i(pixels, target),
        }
        if sample.scene is not None and self.probe_module is not None:
            probe = self._probe(sample.scene.world)
            if isinstance(probe, str):
                result["probe"] = probe
            else:
                read = self.probe_module.read_scenes(pixels, probe=probe)[0]
                result["probe"] = self.probe_module.scene_agreement(read, sample.scene)
        return result

    def _probe(self, world: str) -> Any:
        if world not in self.probes:
            try:
                self.probes[world] = self.probe_module.probe_for(world)
            except (OSError, DiffinvError) as exc:
                self.probes[world] = f"unavailable: {exc}"
        return self.probes[world]


def run_group(
    pipe: StableDiffusionPipeline,
    samples: list[Sample],
    variant: Variant,
    config: BenchConfig,
    scorers: Scorers,
) -> list[dict[str, Any]]:
    """Invert ``samples`` (one or more) with one variant, together (:func:`diffinv.invert` on a list: one UNet call
    per step for all of them), and score each reconstruction (see :class:`Scorers`): one record per image,
    ``seconds`` the batch's time per image."""
    photos = [sample.load() for sample in samples]
    inversions = api.invert(
        pipe,
        photos,
        [sample.caption for sample in samples],
        variant.method,
        config=variant.config,
        batch_size=len(samples),
    )
    return [
        _record(pipe, sample, variant, photo, inversion, config, scorers, batch_size=len(samples))
        for sample, photo, inversion in zip(samples, photos, inversions, strict=True)
    ]


def _record(
    pipe: StableDiffusionPipeline,
    sample: Sample,
    variant: Variant,
    photo: Any,
    inversion: Inversion,
    config: BenchConfig,
    scorers: Scorers,
    *,
    batch_size: int,
) -> dict[str, Any]:
    settings = inversion.settings
    check = api.check_reconstruction(pipe, inversion, photo)
    target, ceiling, latents, pixels = check.target, check.vae_round_trip, check.latents, check.reconstruction
    if inversion.negative_slot_free:
        negative = api.reconstruct(pipe, inversion, negative_prompt=config.negative_prompt, output_type="pt").cpu()
        negative_effect: float | str = float((negative - pixels).abs().mean())
    else:
        negative_effect = "refused: the method occupies the unconditional slot"
    return {
        "key": job_key(sample, variant),
        "sample": sample.id,
        "method": variant.label,
        "base_method": variant.method,
        "steps": settings.num_inference_steps,
        "params": inversion.stats.optimized_params,
        "unet_passes": inversion.stats.unet_passes,
        "seconds": inversion.stats.seconds,
        "batch_size": batch_size,
        "latent_mse": metrics.latent_mse(latents, inversion.source_latents),
        "vae_psnr": json_float(metrics.psnr(ceiling, target)),
        "negative_prompt_effect": negative_effect,
        **scorers.score(pixels, target, sample),
    }


def run_bench(
    pipe: StableDiffusionPipeline,
    samples: list[Sample],
    config: BenchConfig,
    out: Path,
    *,
    rank: int = 0,
    world_size: int = 1,
    progress: bool = True,
) -> int:
    """Run this process's shard of the (image × variant) reconstruction jobs not yet recorded in ``out``; returns
    jobs run (see :func:`run_jobs`). With ``config.batch_size`` B > 1, each job inverts B consecutive images with
    one variant together (the groups do not depend on the process count; a group cut short by a kill re-runs only
    its unrecorded images); records stay one per (image, variant)."""
    scorers = Scorers(config)

    def job(group: list[Sample], variant: Variant) -> Callable[[set[str]], list[dict[str, Any]]]:
        def run(done: set[str]) -> list[dict[str, Any]]:
            return run_group(pipe, [s for s in group if job_key(s, variant) not in done], variant, config, scorers)

        return run

    size = config.batch_size
    groups = [samples[i : i + size] for i in range(0, len(samples), size)]
    jobs = [
        Job(tuple(job_key(s, v) for s in group), index, v.label, job(group, v))
        for index, group in enumerate(groups)
        for v in config.variants
    ]
    return run_jobs(jobs, out, config, pipe, rank=rank, world_size=world_size, progress=progress)
