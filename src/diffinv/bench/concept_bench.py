"""``diffinv concept-bench``: personalization methods on shapes the built-in model never saw.

One job per (concept, method, shots): learn the concept from the first ``shots`` training shots
(:mod:`~diffinv.bench.concept_tasks`), save its file (its size is ``file_kb``), load it, generate it in every
evaluation prompt at every evaluation seed, score fidelity and editability, unload it. A ``class-word`` row per
concept (no learning: the init word in the prompts) gives the floor a method must beat. Jobs go through the shared
resumable, shardable job loop; :mod:`diffinv.bench.concept_report` summarises the records. Every method runs with
flips off: the concepts are not mirror-symmetric.
"""

from __future__ import annotations

import contextlib
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

import torch
from diffusers import StableDiffusionPipeline
from diffusers.utils import make_image_grid

from diffinv import api
from diffinv.bench.concept_report import BASELINE
from diffinv.bench.concept_tasks import EVAL_SEEDS, eval_prompts, score, training_shots
from diffinv.bench.config import ConceptBenchConfig
from diffinv.bench.runner import Job, run_jobs
from diffinv.denoiser import check_training_steps
from diffinv.errors import DiffinvError
from diffinv.io import save_image
from diffinv.personalization import load_concept, unload_concept
from diffinv.shapes.novel import concept_shape
from diffinv.shapes.probe import probe_for

INIT_WORD: Final[str] = "circle"
TOKEN: Final[str] = "<concept>"


def parse_settings(items: list[str]) -> dict[str, dict[str, Any]]:
    """``["ti:steps=1000", "e4t:encoder=DIR"]`` → ``{"ti": {"steps": 1000}, "e4t": {"encoder": "DIR"}}`` (numbers
    become int or float)."""
    settings: dict[str, dict[str, Any]] = defaultdict(dict)
    for item in items:
        method, colon, assignment = item.partition(":")
        key, equals, value = assignment.partition("=")
        if not colon or not equals or not key:
            raise DiffinvError(f"--setting takes METHOD:KEY=VALUE, got {item!r}")
        settings[method][key] = _number_or_text(value)
    return dict(settings)


def _number_or_text(value: str) -> int | float | str:
    for kind in (int, float):
        with contextlib.suppress(ValueError):
            return kind(value)
    return value


MAX_NOVEL_CONCEPTS = 1000
"""The most concepts ``novel:N`` expands to (each one is learnt by every method: a typo must not queue millions)."""


def parse_concepts(text: str) -> tuple[str, ...]:
    """``moon,novel:4`` → ``("moon", "novel-0", …, "novel-3")``."""
    names: list[str] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        kind, colon, count = part.partition(":")
        if colon:
            if kind != "novel" or not count.isdigit() or not 1 <= int(count) <= MAX_NOVEL_CONCEPTS:
                raise DiffinvError(
                    f"--concepts takes moon, novel-<i> or novel:N with N from 1 to {MAX_NOVEL_CONCEPTS}, got {part!r}"
                )
            names += [f"novel-{i}" for i in range(int(count))]
        else:
            names.append(part)
    if not names:
        raise DiffinvError("--concepts names no concept")
    return tuple(names)


def _generate(pipe: StableDiffusionPipeline, word: str, steps: int, world: str) -> list[Any]:
    return [
        api.generate(pipe, prompt, num_inference_steps=steps, generator=torch.Generator().manual_seed(seed))[0]
        for prompt in eval_prompts(word, world)
        for seed in EVAL_SEEDS
    ]


def _job(
    pipe: StableDiffusionPipeline,
    name: str,
    method: str,
    shots: int,
    config: ConceptBenchConfig,
    out: Path,
    keep: bool,
    probe: Any,
) -> Callable[[set[str]], list[dict[str, Any]]]:
    def run(done: set[str]) -> list[dict[str, Any]]:
        shape = concept_shape(name, config.world)
        key = f"{name}|{method}|{shots}"
        record: dict[str, Any] = {"key": key, "concept": name, "method": method, "shots": shots}
        if method == BASELINE:
            generated = _generate(pipe, INIT_WORD, config.num_inference_steps, config.world)
            record.update(seconds=0.0, file_kb=0.0)
        else:
            data = training_shots(shape, shots)
            method_config = config.method_config(method)
            started = time.perf_counter()
            concept = api.learn_concept(pipe, data.images, TOKEN, INIT_WORD, method=method, captions=data.captions,
                                        config=method_config, generator=torch.Generator().manual_seed(config.seed),
                                        progress=False)  # fmt: skip
            seconds = time.perf_counter() - started
            path = concept.save(out / "concepts" / f"{name}-{method}-{shots}.safetensors")
            load_concept(pipe, concept)
            try:
                generated = _generate(pipe, TOKEN, config.num_inference_steps, config.world)
            finally:
                unload_concept(pipe, concept)
            record.update(seconds=seconds, file_kb=path.stat().st_size / 1024, steps=concept.info.steps)
            if keep:
                tiles = data.images + [image.resize(data.images[0].size) for image in generated]
                grid = make_image_grid(tiles, rows=1, cols=len(tiles))
                save_image(grid, out / "examples" / f"{name}-{method}-{shots}.png")
        record.update(score(shape, generated, probe=probe))
        return [record]

    return run


def run_concept_bench(
    pipe: StableDiffusionPipeline,
    config: ConceptBenchConfig,
    out: Path,
    *,
    rank: int = 0,
    world_size: int = 1,
    progress: bool = True,
) -> int:
    """Run this process's share of the (concept × method × shots) jobs not yet recorded in ``out``."""
    check_training_steps(config.num_inference_steps, pipe.scheduler.config.num_train_timesteps)
    probe = probe_for(config.world, config.probe)  # before any work: a probe of another world is refused here
    jobs = []
    for index, name in enumerate(config.concepts):
        keep = index < config.examples
        baseline = _job(pipe, name, BASELINE, 0, config, out, keep, probe)
        jobs.append(Job((f"{name}|{BASELINE}|0",), index, BASELINE, baseline))
        for method in config.methods:
            for shots in config.shots:
                job = _job(pipe, name, method, shots, config, out, keep, probe)
                jobs.append(Job((f"{name}|{method}|{shots}",), index, method, job))
    return run_jobs(jobs, out, config, pipe, rank=rank, world_size=world_size, progress=progress)
