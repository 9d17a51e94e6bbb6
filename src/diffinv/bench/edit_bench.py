"""``diffinv edit-bench``: which inversion gives the best edits, scored against exact targets on Shapes.

For every held-out scene and inversion method the scene is inverted once (with its canonical caption), then every
editor makes every edit of :mod:`diffinv.bench.edit_tasks` from that inversion; SDEdit edits need no inversion.
Each (scene, inversion, editor, edit) is one record, written through the shared job loop
(:func:`diffinv.bench.runner.run_jobs`: resumable, shardable, locked), so the reconstruction bench's guarantees hold.

Scores (the probe reads the edited image): ``success`` — the edited attribute reads as the target's (for
``negative``, as anything but the removed value; for ``strokes``, the whole scene right); ``preservation`` — every
other attribute of the target scene reads right; ``bg_psnr``/``bg_ssim`` — against the source image outside the
edited region (both images zeroed inside it, PIE-Bench's convention); ``target_psnr``/``target_ssim`` — against
the exact target render; ``seconds`` — the edit (the inversion's own time is ``invert_seconds``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from diffusers import StableDiffusionPipeline
from PIL import Image

from diffinv import api, images, metrics
from diffinv.bench.config import EDITORS, EditBenchConfig
from diffinv.bench.datasets import Sample
from diffinv.bench.edit_tasks import EditTask, make_task
from diffinv.bench.editors import BenchEditor, EditRequest
from diffinv.bench.pie import PieSample, background_scores
from diffinv.bench.runner import Job, json_float, run_jobs
from diffinv.bench.variants import Variant
from diffinv.errors import DiffinvError
from diffinv.io import save_image
from diffinv.shapes import probe as shapes_probe

STRUCTURE_UNAVAILABLE = "unavailable: structure distance needs DINO ViT weights, which are not available here"


def _key(sample: Sample, inversion: str, editor: str, edit: str) -> str:
    return f"{sample.id}|{inversion}|{editor}|{edit}"


def _to_tensor(image: Image.Image | np.ndarray) -> torch.Tensor:
    array = np.asarray(image, dtype=np.float32) / 255.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0)


def score(edited: Image.Image, task: EditTask, negative_only: bool, probe: Any) -> dict[str, Any]:
    """The edit's scores (see the module docstring); ``negative_only``: the editor only removes (success is the
    removed value gone, and there is no target render to compare with)."""
    pixels, source, target = _to_tensor(edited), _to_tensor(task.source_image), _to_tensor(task.target_image)
    read = shapes_probe.read_scenes(pixels, probe=probe)[0]
    agreement = shapes_probe.scene_agreement(read, task.target)
    if task.kind == "strokes":
        success, preserved = agreement["all"], None
    else:
        if task.kind == "background":
            value, wanted, removed = read.background, task.target.background, task.source.background
        else:
            cell = task.target.objects[task.index].position
            found = [o for o in read.objects if o.position == cell]
            value = getattr(found[0], task.attribute) if found else None
            wanted = getattr(task.target.objects[task.index], task.attribute)
            removed = getattr(task.source.objects[task.index], task.attribute)
        success = float(value != removed and value is not None) if negative_only else float(value == wanted)
        others = [k for k in shapes_probe.AGREEMENT_KEYS if k not in (task.attribute, "all")]
        preserved = float(all(agreement[k] == 1.0 for k in others))
    result: dict[str, Any] = {
        "success": success,
        "preservation": preserved,
        **_kept(read, task),
        "bg_psnr": None,
        "bg_ssim": None,
        "target_psnr": None if negative_only else json_float(metrics.psnr(pixels, target)),
        "target_ssim": None if negative_only else metrics.ssim(pixels, target),
    }
    if task.kind != "strokes":
        result.update(_background(pixels, source, task.region))
    return result


KEPT_ATTRIBUTES = ("shape", "color", "size", "fill")
"""What an object the edit leaves alone must keep (its cell is how it is found)."""


def _kept(read: Any, task: EditTask) -> dict[str, float | None]:
    """Of what the edit must leave alone — every other object and, unless edited, the background — the fractions the
    probe reads unchanged among what the source caption mentions (``kept_mentioned``) and what it leaves out
    (``kept_unmentioned``); ``None`` for an empty group (full captions leave nothing out) and for strokes."""
    if task.kind == "strokes":
        return {"kept_mentioned": None, "kept_unmentioned": None}
    cells = {o.position: o for o in read.objects}
    groups: dict[bool, list[bool]] = {True: [], False: []}
    for i, obj in enumerate(task.target.objects):
        if i != task.index:
            got = cells.get(obj.position)
            same = got is not None and all(
                getattr(got, a) == getattr(obj, a) for a in ("shape", "color", "size", "fill")
            )
            groups[task.mentions.mentioned(i)].append(same)
    if task.kind != "background":
        groups[task.mentions.background].append(read.background == task.target.background)
    return {f"kept_{'mentioned' if k else 'unmentioned'}": float(np.mean(v)) if v else None for k, v in groups.items()}


def _background(edited: torch.Tensor, source: torch.Tensor, region: np.ndarray, lpips: Any = None) -> dict[str, Any]:
    """PIE-Bench's background preservation outside ``region`` as ``bg_*`` record fields (``lpips``: a scorer, or
    the string saying why it is unavailable)."""
    scores = background_scores(edited, source, region, lpips=None if isinstance(lpips, str) else lpips)
    fields: dict[str, Any] = {f"bg_{k}": json_float(v) for k, v in scores.items()}
    if isinstance(lpips, str):
        fields["bg_lpips"] = lpips
    return fields


def edit_bench_jobs(
    pipe: StableDiffusionPipeline, samples: list[Sample], config: EditBenchConfig, out: Path
) -> list[Job]:
    """One job per (scene, inversion variant) plus one SDEdit job per scene."""
    if any(sample.scene is None for sample in samples):
        raise DiffinvError("the edit bench needs Shapes scenes (--dataset shapes:N)")
    probe = shapes_probe.probe_for(samples[0].scene.world) if samples else None
    jobs = []
    for index, sample in enumerate(samples):
        tasks = []
        for n, kind in enumerate(config.edits):
            try:
                tasks.append(make_task(sample.scene, kind, (config.seed, index, n), sample.description))
            except DiffinvError:  # no other background contrasts with every object, or the caption names no such thing
                continue
        for variant in (*config.variants, None):
            label = "none" if variant is None else variant.label
            editors = {e: EDITORS[e] for e in config.editors if EDITORS[e].needs_inversion == (variant is not None)}
            keys = tuple(_key(sample, label, name, t.kind) for name in editors for t in tasks)
            if not keys:
                continue
            run = _job(pipe, sample, index, variant, editors, tasks, config, probe, out)
            jobs.append(Job(keys, index, label, run))
    return jobs


def _job(
    pipe: StableDiffusionPipeline,
    sample: Sample,
    index: int,
    variant: Variant | None,
    editors: dict[str, BenchEditor],
    tasks: list[EditTask],
    config: EditBenchConfig,
    probe: Any,
    out: Path,
) -> Callable[[set[str]], list[dict[str, Any]]]:
    def run(done: set[str]) -> list[dict[str, Any]]:
        inversion, invert_seconds = None, 0.0
        if variant is not None:
            started = time.perf_counter()
            inversion = api.invert(pipe, Image.fromarray(tasks[0].source_image), tasks[0].source_prompt,
                                   variant.method, config=variant.config)  # fmt: skip
            invert_seconds = time.perf_counter() - started
        label = "none" if variant is None else variant.label
        method = None if variant is None else variant.method
        records = []
        for name, editor in editors.items():
            for task in (t for t in tasks if _key(sample, label, name, t.kind) not in done):
                record: dict[str, Any] = {
                    "key": _key(sample, label, name, task.kind),
                    "sample": sample.id,
                    "inversion": label,
                    "editor": name,
                    "edit": task.kind,
                    "source_prompt": task.source_prompt,
                    "target_prompt": task.target_prompt,
                    "invert_seconds": invert_seconds,
                }
                request = EditRequest.of_task(task)
                if not editor.applies_to(method, inversion, request):
                    records.append({**record, "skipped": "does not apply", "seconds": 0.0})
                    continue
                started = time.perf_counter()
                image = editor.edit(pipe, inversion, request, config)[0]
                seconds = time.perf_counter() - started
                records.append({**record, "seconds": seconds, **score(image, task, not editor.follows_target, probe)})
                if index < config.examples:
                    save_image(image, out / "examples" / f"{sample.id}_{task.kind}_{label}_{name}.png")
        return records

    return run


def pie_jobs(pipe: StableDiffusionPipeline, samples: list[PieSample], config: EditBenchConfig, out: Path) -> list[Job]:
    """PIE-Bench: one job per (image, inversion variant); prompt-to-prompt editors only (PIE has no strokes), scored
    by PIE-Bench's background preservation outside its mask, LPIPS and CLIP similarity where weights exist."""
    lpips, clip = metrics.load_lpips(config.lpips_weights), metrics.load_clip(config.clip_model)
    editors = {e: EDITORS[e] for e in config.editors if EDITORS[e].needs_inversion and EDITORS[e].follows_target}
    jobs = []
    for index, sample in enumerate(samples):
        for variant in config.variants:
            keys = tuple(_key(sample, variant.label, name, "pie") for name in editors)
            if keys:
                jobs.append(Job(keys, index, variant.label, _pie_job(pipe, sample, index, variant, editors, config,
                                                                     lpips, clip, out)))  # fmt: skip
    return jobs


def _pie_job(
    pipe: StableDiffusionPipeline,
    sample: PieSample,
    index: int,
    variant: Variant,
    editors: dict[str, BenchEditor],
    config: EditBenchConfig,
    lpips: Any,
    clip: Any,
    out: Path,
) -> Callable[[set[str]], list[dict[str, Any]]]:
    def run(done: set[str]) -> list[dict[str, Any]]:
        image = sample.load_image()
        started = time.perf_counter()
        inversion = api.invert(pipe, image, sample.source_prompt, variant.method, config=variant.config)
        invert_seconds = time.perf_counter() - started
        height, width = inversion.settings.height, inversion.settings.width
        source = (images.prepare_image(image, height, width) + 1) / 2
        mask = sample.mask(height, width)
        request = EditRequest.of_pie(sample)
        records = []
        for name, editor in ((n, e) for n, e in editors.items() if _key(sample, variant.label, n, "pie") not in done):
            record: dict[str, Any] = {
                "key": _key(sample, variant.label, name, "pie"),
                "sample": sample.id,
                "inversion": variant.label,
                "editor": name,
                "edit": "pie",
                "editing_type": sample.editing_type,
                "invert_seconds": invert_seconds,
            }
            if not editor.applies_to(variant.method, inversion, request):
                records.append({**record, "skipped": "does not apply", "seconds": 0.0})
                continue
            started = time.perf_counter()
            edited = editor.edit(pipe, inversion, request, config, output_type="pt").cpu()
            records.append({
                **record,
                "seconds": time.perf_counter() - started,
                **_background(edited, source, mask, lpips),
                "clip_similarity": clip if isinstance(clip, str) else clip.clip_t(edited, [sample.target_prompt]),
                "structure_distance": STRUCTURE_UNAVAILABLE,
            })  # fmt: skip
            if index < config.examples:
                save_image(images.pixels_to_output(edited, "pil")[0],
                           out / "examples" / f"{sample.id}_{variant.label}_{name}.png")  # fmt: skip
        return records

    return run


def run_edit_bench(
    pipe: StableDiffusionPipeline,
    samples: list[Sample] | list[PieSample],
    config: EditBenchConfig,
    out: Path,
    *,
    rank: int = 0,
    world_size: int = 1,
    progress: bool = True,
) -> int:
    """Run this process's share of the edit jobs not yet recorded in ``out``; returns jobs run."""
    if samples and isinstance(samples[0], PieSample):
        jobs = pie_jobs(pipe, samples, config, out)
    else:
        jobs = edit_bench_jobs(pipe, samples, config, out)
    return run_jobs(jobs, out, config, pipe, rank=rank, world_size=world_size, progress=progress)
