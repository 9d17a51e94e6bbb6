"""``diffinv bench``: run (image, method) jobs, one JSON line each, resumable and shardable.

Every finished job is appended to ``OUT/records-<rank>.jsonl`` (flushed and fsynced) as soon as it is done; a
re-run skips every job already recorded in any ``records-*.jsonl`` of the folder, so a run killed at any moment
loses nothing written. Under ``accelerate launch --num_processes N`` each process takes every N-th image; after all
have finished, the main process writes the summary (:mod:`diffinv.bench.report`), which depends only on the
records. Every process computes with the same number of torch CPU threads (``BenchConfig.num_threads``): float
reductions depend on the thread count, and early-stopped optimisations amplify such differences, so only at a fixed
count are the records of an N-process run bitwise those of a one-process run (wall-clock times aside).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import StableDiffusionPipeline
from tqdm.auto import tqdm

from diffinv import api, metrics
from diffinv.bench.config import BenchConfig
from diffinv.bench.datasets import Sample
from diffinv.bench.variants import Variant
from diffinv.errors import DiffinvError
from diffinv.inversion import Inversion

RECORDS_GLOB = "records-*.jsonl"


def read_records(out: Path) -> list[dict[str, Any]]:
    """One record per job key from the ``records-*.jsonl`` in ``out``: the first complete line written for it (a
    torn last line is ignored, and so are duplicates, e.g. from two runs that once shared the folder)."""
    records: dict[str, dict[str, Any]] = {}
    for path in sorted(out.glob(RECORDS_GLOB)):
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(record, dict) and isinstance(record.get("key"), str):
                records.setdefault(record["key"], record)
    return list(records.values())


@contextlib.contextmanager
def folder_lock(out: Path, rank: int) -> Iterator[None]:
    """Hold ``OUT/.records-<rank>.lock`` while process ``rank`` of a run writes its records.

    Every run has a rank 0, so a second run on the same folder (of any process count) finds at least one lock held
    and stops with :class:`DiffinvError` instead of recording every job twice. The lock is released when the
    process ends, even if it is killed.
    """
    out.mkdir(parents=True, exist_ok=True)
    with (out / f".records-{rank}.lock").open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise DiffinvError(
                f"another diffinv bench is running on {out} (process {rank}); wait for it to finish or give "
                "another --out"
            ) from None
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


class RecordWriter:
    """Appends one JSON object per line, durably (flush + fsync), repairing a torn last line first."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_file() and path.stat().st_size and not path.read_bytes().endswith(b"\n"):
            with path.open("ab") as handle:
                handle.write(b"\n")
        self.path = path

    def write(self, record: dict[str, Any]) -> None:
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())


def job_key(sample: Sample, variant: Variant) -> str:
    return f"{sample.id}|{variant.label}"


def json_float(value: float) -> float | str:
    """``value``, or ``"inf"``/``"nan"`` (JSON has no infinities)."""
    return value if math.isfinite(value) else ("inf" if value > 0 else "nan")


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


def _eta(remaining: dict[str, int], spent: dict[str, list[float]]) -> str:
    parts = []
    for label, count in remaining.items():
        if count and spent[label]:
            seconds = count * sum(spent[label]) / len(spent[label])
            parts.append(f"{label} {tqdm.format_interval(seconds)}")
    return ", ".join(parts)


@dataclass(frozen=True)
class Job:
    """One unit of bench work.

    Attributes:
        keys: the record keys it writes (it is skipped when every one is recorded).
        shard: which process takes it: the one with ``rank == shard % world_size`` (the image's index, so one
            image's jobs stay in one process).
        label: groups jobs for the ETA.
        run: ``run(done)`` computes the records of the job's keys not in ``done`` (the keys already recorded;
            dicts with ``key`` and ``seconds``), so a bench that gains an editor or a metric runs only what is new.
    """

    keys: tuple[str, ...]
    shard: int
    label: str
    run: Callable[[set[str]], list[dict[str, Any]]]


def run_jobs(
    jobs: Iterable[Job],
    out: Path,
    *,
    rank: int = 0,
    world_size: int = 1,
    num_threads: int = 1,
    progress: bool = True,
) -> int:
    """Run this process's share of ``jobs`` not yet recorded in ``out``, appending each record as soon as its job
    is done; returns the number of jobs run. Every bench (reconstruction, editing) runs through here.

    Raises:
        DiffinvError: another run holds this process's lock on ``out`` (see :func:`folder_lock`).
    """
    with folder_lock(out, rank):
        done = {r["key"] for r in read_records(out)}
        todo = [j for j in jobs if j.shard % world_size == rank and not set(j.keys) <= done]
        writer = RecordWriter(out / f"records-{rank}.jsonl")
        remaining: dict[str, int] = defaultdict(int)
        for job in todo:
            remaining[job.label] += 1
        spent: dict[str, list[float]] = defaultdict(list)
        bar = tqdm(total=len(todo), disable=not progress, desc=f"bench[{rank}/{world_size}]", unit="job")
        threads = torch.get_num_threads()
        torch.set_num_threads(num_threads)
        try:
            for job in todo:
                records = job.run(done)
                for record in records:
                    if record["key"] not in done:
                        writer.write(record)
                remaining[job.label] -= 1
                spent[job.label].append(sum(r["seconds"] for r in records))
                bar.update()
                bar.set_postfix_str(f"ETA {_eta(remaining, spent)}")
        finally:
            torch.set_num_threads(threads)
            bar.close()
    return len(todo)


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
    return run_jobs(jobs, out, rank=rank, world_size=world_size, num_threads=config.num_threads, progress=progress)
