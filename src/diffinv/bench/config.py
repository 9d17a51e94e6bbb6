"""What the benches run: one config per bench command (each field is one of its options), the default method lists
and the editing bench's registry of editors.

Plain data (no torch), so the command line can describe every option without loading a model library.
"""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from diffinv.bench.variants import Variant, parse_variant
from diffinv.config import Config, SamplingConfig, init_fields, setting
from diffinv.editing.config import SDEditConfig
from diffinv.errors import DiffinvError, check_integer, check_items, check_number
from diffinv.inversion.registry import METHODS
from diffinv.personalization.registry import METHOD_CONFIGS
from diffinv.registry import Registry

DEFAULT_METHODS = tuple(METHODS)
"""The inversion methods every bench compares unless told otherwise: every registered one, in registry order."""
EDIT_KINDS = ("recolor", "reshape", "resize", "background", "strokes")
OBJECT_EDITS = ("recolor", "reshape", "resize", "background")
DEFAULT_STRENGTHS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)

EDITORS: Registry[Any] = Registry(
    "editor",
    [
        ("p2p", "diffinv.bench.editors:P2P"),
        ("p2p-blend", "diffinv.bench.editors:P2P_BLEND"),
        ("prompt", "diffinv.bench.editors:PROMPT"),
        ("p2p-cross", "diffinv.bench.editors:P2P_CROSS"),
        ("p2p-self", "diffinv.bench.editors:P2P_SELF"),
        ("p2p-neg", "diffinv.bench.editors:P2P_NEG"),
        ("negative", "diffinv.bench.editors:NEGATIVE"),
        ("p2p-delta", "diffinv.bench.editors:P2P_DELTA"),
        ("p2p-prefix", "diffinv.bench.editors:P2P_PREFIX"),
        ("p2p-both", "diffinv.bench.editors:P2P_BOTH"),
        ("p2p-source-maps", "diffinv.bench.editors:P2P_SOURCE_MAPS"),
        ("p2p-blend-injected", "diffinv.bench.editors:P2P_BLEND_INJECTED"),
        ("p2p-refine", "diffinv.bench.editors:P2P_REFINE"),
        ("p2p-refine-position", "diffinv.bench.editors:P2P_REFINE_POSITION"),
        ("sdedit", "diffinv.bench.editors:SDEDIT"),
    ],
)
"""The editing bench's editors (:class:`diffinv.bench.editors.BenchEditor` objects), by record name. Adding one: an
object in a new file (or :mod:`diffinv.bench.editors`) and one line here; entries are imported on first lookup."""
DIAGNOSTIC_EDITORS = (
    *("p2p-cross", "p2p-self", "p2p-source-maps"),
    *("p2p-blend-injected", "p2p-refine", "p2p-refine-position"),
)
"""Which attention injection helps or hurts (docs/editing.md): run on request, not by default."""
DEFAULT_EDITORS = tuple(name for name in EDITORS if name not in DIAGNOSTIC_EDITORS)

TokenReplacement = Literal["zero", "pad"]
TOKEN_REPLACEMENTS: tuple[str, ...] = typing.get_args(TokenReplacement)


def _variants(methods: tuple[str, ...]) -> tuple[Variant, ...]:
    return tuple(parse_variant(m) for m in check_items("methods (--methods)", methods))


@dataclass(frozen=True)
class JobConfig(Config):
    """What every bench's job loop takes (:func:`diffinv.bench.runner.run_jobs`).

    Every process computes with the same number of torch CPU threads: float reductions depend on the thread count,
    and early-stopped optimisations amplify such differences, so only at a fixed count are the records of an
    N-process run bitwise those of a one-process run (docs/results.md, "One vs two processes", measures the fast
    setting of this project's machine).
    """

    num_threads: int = setting(
        1,
        "torch CPU threads per process; results are identical for any process count at a fixed value",
        aliases=("--threads",),
    )
    resumable: ClassVar[tuple[str, ...]] = ("num_threads",)
    """Fields a later run on the same output folder may change: those that choose which jobs run (each job's key
    names its choice) or change no record. Every other field changes what a record holds, so a folder's records
    must all share it (:meth:`record_settings`)."""

    def __post_init__(self) -> None:
        check_integer("num_threads (--threads)", self.num_threads, minimum=1)

    def record_settings(self) -> dict[str, Any]:
        """The settings every record of one output folder shares (JSON-ready), checked on a resume by
        :func:`diffinv.bench.runner.run_jobs`."""
        return {key: value for key, value in self.to_dict().items() if key not in self.resumable}


@dataclass(frozen=True)
class BenchConfig(JobConfig):
    """What ``diffinv bench`` (the reconstruction bench) runs."""

    dataset: str = setting("shapes:100", "shapes:N | shapes-partial:N[@WORLD] | photos | coco:ROOT | folder:PATH")
    limit: int | None = setting(None, "a deterministic sample of N images (default: all)")
    seed: int = setting(0, "seed of the --limit sample")
    methods: tuple[str, ...] = setting(
        DEFAULT_METHODS,
        "METHOD[:key=value,...] variants or presets (prompt-tokens@paper, null-text@paper); see diffinv.bench.variants",
    )
    negative_prompt: str = setting(
        "blurry, low quality, distorted", "rerun with this negative prompt: does it still change the reconstruction?"
    )
    clip_model: str | None = setting(None, "local CLIP folder or cached hub id for CLIP-I (default: cached ViT-B/32)")
    lpips_weights: str | None = setting(None, "folder with AlexNet's weights for LPIPS (default: the torch hub cache)")
    batch_size: int = setting(
        1,
        "images of one method inverted together, one UNet call per step for all (records are the same up to float "
        "rounding, times are per image; benchmarks/throughput.py measures the gain)",
    )
    variants: tuple[Variant, ...] = field(init=False)
    resumable: ClassVar[tuple[str, ...]] = ("num_threads", "dataset", "limit", "seed", "methods", "batch_size")

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.limit is not None:
            check_integer("limit (--limit)", self.limit, minimum=1)
        check_integer("batch_size (--batch-size)", self.batch_size, minimum=1)
        object.__setattr__(self, "variants", _variants(self.methods))


@dataclass(frozen=True)
class EditBenchConfig(JobConfig):
    """What ``diffinv edit-bench`` runs (:mod:`diffinv.bench.edit_bench`)."""

    dataset: str = setting("shapes:100", "shapes:N (held-out scenes) or pie:ROOT (PIE-Bench)")
    limit: int | None = setting(None, "a deterministic sample of N scenes (default: all)")
    seed: int = setting(0, "seeds the --limit sample, the edit choices, the stroke paintings and SDEdit's noise")
    methods: tuple[str, ...] = setting(
        DEFAULT_METHODS, "inversion variants, as diffinv bench --methods", aliases=("--inversions",)
    )
    editors: tuple[str, ...] = setting(DEFAULT_EDITORS, f"from {', '.join(EDITORS)}")
    edits: tuple[str, ...] = setting(EDIT_KINDS, f"from {', '.join(EDIT_KINDS)}")
    sdedit_strength: float = setting(SDEditConfig.default("strength"), "t0 of the sdedit editor")
    examples: int = setting(4, "images of the first N scenes are saved under OUT/examples")
    lpips_weights: str | None = setting(None, "PIE-Bench: folder with AlexNet's weights for LPIPS")
    clip_model: str | None = setting(None, "PIE-Bench: local CLIP folder for CLIP similarity")
    variants: tuple[Variant, ...] = field(init=False)
    resumable: ClassVar[tuple[str, ...]] = (
        *("num_threads", "dataset", "limit"),
        *("methods", "editors", "edits", "examples"),
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        EDITORS.check(check_items("editors (--editors)", self.editors))
        check_items("edits (--edits)", self.edits)
        unknown = [e for e in self.edits if e not in EDIT_KINDS]
        if unknown:
            raise DiffinvError(f"unknown edit(s) {', '.join(unknown)}; choose from {', '.join(EDIT_KINDS)}")
        if self.limit is not None:
            check_integer("limit (--limit)", self.limit, minimum=1)
        check_number("sdedit_strength (--sdedit-strength)", self.sdedit_strength, minimum=0, maximum=1, above=True)
        try:  # it must run at least one of SDEdit's steps
            SDEditConfig(strength=self.sdedit_strength)
        except DiffinvError as exc:
            raise DiffinvError(f"--sdedit-strength: {exc}") from None
        check_integer("examples (--examples)", self.examples, minimum=0)
        if self.methods or any(EDITORS[name].needs_inversion for name in self.editors):
            object.__setattr__(self, "variants", _variants(self.methods))
        else:  # image editors only (sdedit): no inversion to run
            object.__setattr__(self, "variants", ())


@dataclass(frozen=True)
class SDEditSweepConfig(JobConfig):
    """What ``diffinv sdedit-sweep`` runs (:mod:`diffinv.bench.sdedit_sweep`)."""

    dataset: str = setting("shapes:50", "shapes:N or shapes-partial:N[@WORLD] (held-out scenes)")
    strengths: tuple[float, ...] = setting(DEFAULT_STRENGTHS, "the t0 values SDEdit runs at, each in (0, 1]")
    seed: int = setting(0, "seeds the scene sample, the stroke paintings and SDEdit's noise")
    resumable: ClassVar[tuple[str, ...]] = ("num_threads", "dataset", "strengths")

    def __post_init__(self) -> None:
        super().__post_init__()
        check_items("strengths (--strengths)", self.strengths)
        if any(isinstance(t, bool) or not isinstance(t, int | float) or not 0.0 < t <= 1.0 for t in self.strengths):
            raise DiffinvError(f"--strengths takes numbers in (0, 1], got {self.strengths!r}")
        for strength in self.strengths:  # each must run at least one of SDEdit's steps
            try:
                SDEditConfig(strength=strength)
            except DiffinvError as exc:
                raise DiffinvError(f"--strengths: {exc}") from None


@dataclass(frozen=True)
class ConceptBenchConfig(JobConfig):
    """What ``diffinv concept-bench`` runs (:mod:`diffinv.bench.concept_bench`)."""

    concepts: tuple[str, ...] = setting(
        ("moon", "novel-0", "novel-1", "novel-2", "novel-3"),
        "concept names: moon, novel-<i> or a world's held-out shape (novel:N on the command line is novel-0 ...)",
    )
    methods: tuple[str, ...] = setting(
        tuple(METHOD_CONFIGS), f"personalization methods, from {', '.join(METHOD_CONFIGS)}"
    )
    shots: tuple[int, ...] = setting((1, 3, 5), "how many training shots each method learns from")
    seed: int = setting(0, "seeds every method's randomness")
    examples: int = setting(2, "concepts whose grids (shots | generations) are saved")
    settings: dict[str, dict[str, Any]] = field(
        default_factory=dict,
        metadata={
            "help": "per-method changes of its default config, METHOD:KEY=VALUE (e.g. ti:steps=1000)",
            "aliases": ("--setting",),
        },
    )
    num_inference_steps: int = setting(
        SamplingConfig.default("num_inference_steps"), "DDIM steps of each evaluation image", aliases=("--steps",)
    )
    world: str | None = setting(
        None, "the Shapes world of the model: v2 or v3 (default: diffinv.shapes' default world)"
    )
    probe: str | None = setting(None, "a probe folder for that world (default: the shipped probe, which reads v2)")
    resumable: ClassVar[tuple[str, ...]] = ("num_threads", "concepts", "methods", "shots", "examples")

    def __post_init__(self) -> None:
        from diffinv.bench.concept_tasks import SHOTS
        from diffinv.shapes.novel import concept_shape

        super().__post_init__()
        if self.world is None:  # resolved here: the shapes package needs numpy, and --help must not load it
            from diffinv.shapes.world import DEFAULT_WORLD

            object.__setattr__(self, "world", DEFAULT_WORLD)
        check_items("concepts (--concepts)", self.concepts)
        check_items("methods (--methods)", self.methods)
        check_items("shots (--shots)", self.shots)
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
        unknown = set(changes) - set(init_fields(cls))
        if unknown:
            raise DiffinvError(f"--setting: {method} has no setting {min(unknown)!r}")
        return cls(**{"flip_probability": 0.0, **changes})


@dataclass(frozen=True)
class TokenInfluenceConfig(SamplingConfig):
    """What ``diffinv token-influence`` measures (:mod:`diffinv.bench.token_influence`): the reference paper's
    Fig. 1, generated with the shared sampler's settings."""

    replacement: TokenReplacement = setting(
        "zero", "what replaces positions ≥ k: zeros (the paper's Fig. 1) or the empty prompt's embedding (pad)"
    )
    seed: int = setting(0, "the generation seed")
    threshold: float = setting(
        0.01, "mean absolute pixel change (images in [0, 1]) below which a truncation has no visible influence"
    )

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.replacement not in TOKEN_REPLACEMENTS:
            raise DiffinvError(f"replacement must be one of {', '.join(TOKEN_REPLACEMENTS)}, got {self.replacement!r}")
        check_number("threshold", self.threshold, minimum=0)
