"""``diffinv concept-bench``: personalization methods on shapes the built-in model never saw.

One job per (concept, method, shots): learn the concept from the first ``shots`` training shots
(:mod:`~diffinv.bench.concept_tasks`), save its file (its size is ``file_kb``), load it, generate it in every
evaluation prompt at every evaluation seed, score fidelity and editability, unload it. A ``class-word`` row per
concept (no learning: the init word in the prompts) gives the floor a method must beat. Jobs go through the shared
resumable, shardable job loop; ``summary.json`` rows (method, shots, fidelity, fidelity_gain, editability, seconds,
file_kb, n) average over concepts. Every method runs with flips off: the concepts are not mirror-symmetric.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
from diffusers import StableDiffusionPipeline
from diffusers.utils import make_image_grid

from diffinv import api
from diffinv.bench.concept_tasks import EVAL_SEEDS, SHOTS, eval_prompts, score, training_shots
from diffinv.bench.report import save_figure
from diffinv.bench.runner import Job, run_jobs
from diffinv.denoiser import check_training_steps
from diffinv.errors import DiffinvError, check_integer
from diffinv.io import atomic_write, save_image
from diffinv.personalization import load_concept, unload_concept
from diffinv.personalization.config import METHOD_CONFIGS
from diffinv.shapes.novel import concept_shape
from diffinv.shapes.probe import probe_for
from diffinv.shapes.world import DEFAULT_WORLD

BASELINE: Final[str] = "class-word"
INIT_WORD: Final[str] = "circle"
TOKEN: Final[str] = "<concept>"
SUMMARY_KEYS: Final[tuple[str, ...]] = (
    "fidelity",
    "editability",
    "color_right",
    "position_right",
    "background_right",
    "seconds",
    "file_kb",
)


@dataclass(frozen=True)
class ConceptBenchConfig:
    """What ``diffinv concept-bench`` runs.

    Attributes:
        concepts: concept names (``moon``, ``novel-<i>``); ``novel:N`` on the command line is ``novel-0`` …
        methods: personalization methods (``ti``, ``lora``, ``e4t``).
        shots: how many training shots each method learns from.
        seed: seeds every method's randomness.
        num_threads: torch CPU threads per process.
        examples: concepts whose grids (shots | generations) are saved.
        settings: per-method changes of its default config, e.g. ``{"ti": {"steps": 1000}}``.
        num_inference_steps: DDIM steps of each evaluation image.
    """

    concepts: tuple[str, ...] = ("moon", "novel-0", "novel-1", "novel-2", "novel-3")
    methods: tuple[str, ...] = ("ti", "lora", "e4t")
    shots: tuple[int, ...] = (1, 3, 5)
    seed: int = 0
    num_threads: int = 1
    examples: int = 2
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    num_inference_steps: int = 50
    world: str = DEFAULT_WORLD
    probe: str | None = None
    """A probe folder for ``world`` (default: the shipped probe, which reads v2)."""

    def __post_init__(self) -> None:
        for name in self.concepts:
            try:
                concept_shape(name, self.world)
            except ValueError as exc:
                raise DiffinvError(str(exc)) from None
        unknown = [m for m in self.methods if m not in METHOD_CONFIGS]
        if unknown or not self.methods:
            raise DiffinvError(f"--methods takes some of {', '.join(METHOD_CONFIGS)}, got {', '.join(unknown)}")
        if not self.shots or any(not isinstance(k, int) or not 1 <= k <= len(SHOTS) for k in self.shots):
            raise DiffinvError(f"--shots takes numbers from 1 to {len(SHOTS)}")
        check_integer("num_threads (--threads)", self.num_threads, minimum=1)
        check_integer("examples (--examples)", self.examples, minimum=0)
        check_integer("num_inference_steps (--steps)", self.num_inference_steps, minimum=1)
        for method in self.settings:
            if method not in self.methods:
                raise DiffinvError(f"--setting for {method!r}, which is not among --methods")
            self.method_config(method)  # validates the changes

    def method_config(self, method: str) -> Any:
        """``method``'s default config with this bench's settings, flips off (the concepts are not symmetric)."""
        cls = METHOD_CONFIGS[method]
        changes = self.settings.get(method, {})
        unknown = set(changes) - {f.name for f in dataclasses.fields(cls)}
        if unknown:
            raise DiffinvError(f"--setting: {method} has no setting {min(unknown)!r}")
        return cls(**{"flip_probability": 0.0, **changes})


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


def parse_concepts(text: str) -> tuple[str, ...]:
    """``moon,novel:4`` → ``("moon", "novel-0", …, "novel-3")``."""
    names: list[str] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        kind, colon, count = part.partition(":")
        if colon:
            if kind != "novel" or not count.isdigit() or int(count) < 1:
                raise DiffinvError(f"--concepts takes moon, novel-<i> or novel:N, got {part!r}")
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
    return run_jobs(jobs, out, rank=rank, world_size=world_size, num_threads=config.num_threads, progress=progress)


def summarize(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per (method, shots), averaged over concepts; ``fidelity_gain`` is the mean of each concept's
    fidelity minus its class-word row's (over the concepts that have one)."""
    groups: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    floor = {r["concept"]: r["fidelity"] for r in records if r["method"] == BASELINE}
    for record in records:
        groups[(record["method"], int(record["shots"]))].append(record)
    order = {BASELINE: 0, **{m: i + 1 for i, m in enumerate(METHOD_CONFIGS)}}
    rows = []
    for (method, shots), recs in sorted(groups.items(), key=lambda kv: (order.get(kv[0][0], 99), kv[0][1])):
        gains = [r["fidelity"] - floor[r["concept"]] for r in recs if r["concept"] in floor]
        rows.append({"method": method, "shots": shots, "n": len(recs),
                     **{k: float(np.mean([r[k] for r in recs])) for k in SUMMARY_KEYS},
                     "fidelity_gain": float(np.mean(gains)) if gains else None})  # fmt: skip
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| method | shots | fidelity (IoU) ↑ | vs class word ↑ | editability ↑ | colour | position | background "
        "| s/concept | file kB | n |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['method']} | {r['shots']} | {r['fidelity']:.3f} | {_signed(r['fidelity_gain'])} | "
            f"{100 * r['editability']:.1f} % | "
            f"{100 * r['color_right']:.1f} % | {100 * r['position_right']:.1f} % | "
            f"{100 * r['background_right']:.1f} % | {r['seconds']:.1f} | {r['file_kb']:.1f} | {r['n']} |"
        )
    return "\n".join(lines) + "\n"


def _signed(value: float | None) -> str:
    return "—" if value is None else f"{value:+.3f}"


def write_summary(records: list[dict[str, Any]], out: Path) -> list[dict[str, Any]]:
    """``summary.json``, ``summary.md`` and ``fidelity.png`` (fidelity against shots and against seconds)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = summarize(records)
    atomic_write(out / "summary.json", lambda tmp: tmp.write_text(json.dumps(rows, indent=2) + "\n"))
    atomic_write(out / "summary.md", lambda tmp: tmp.write_text(markdown(rows)))
    fig, (by_shots, by_time) = plt.subplots(1, 2, figsize=(11, 4.2))
    for method in dict.fromkeys(r["method"] for r in rows):
        mine = [r for r in rows if r["method"] == method]
        if method == BASELINE:
            for ax in (by_shots, by_time):
                ax.axhline(mine[0]["fidelity"], color="gray", linestyle="--", label="class word (no learning)")
            continue
        by_shots.plot([r["shots"] for r in mine], [r["fidelity"] for r in mine], "o-", label=method)
        by_time.plot([r["seconds"] for r in mine], [r["fidelity"] for r in mine], "o", label=method)
    by_shots.set_xlabel("training shots")
    by_time.set_xlabel("seconds of learning per concept (this CPU)")
    by_time.set_xscale("log")
    for ax in (by_shots, by_time):
        ax.set_ylabel("fidelity: silhouette IoU")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("Personalization on unseen shapes (built-in model)")
    fig.tight_layout()
    save_figure(fig, out / "fidelity.png")
    plt.close(fig)
    return rows
