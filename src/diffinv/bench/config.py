"""What the benches run: their configuration dataclasses, default method lists and the editing bench's editors.

Plain data (no torch), so the command line can describe every option without loading a model library.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from diffinv.bench.variants import Variant, parse_variant
from diffinv.errors import DiffinvError, check_integer

DEFAULT_METHODS = ("ddim", "null-text", "prompt-tokens", "negative-prompt", "direct")
EDIT_KINDS = ("recolor", "reshape", "resize", "background", "strokes")
DEFAULT_STRENGTHS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


@dataclass(frozen=True)
class BenchConfig:
    """What ``diffinv bench`` runs.

    Attributes:
        methods: variant specs (``METHOD[:key=value,...]`` or preset names; see :mod:`diffinv.bench.variants`).
        negative_prompt: used to test whether a negative prompt still changes the reconstruction.
        clip_model: local CLIP folder or cached hub id for CLIP-I (``None``: the default, if cached).
        lpips_weights: folder holding AlexNet's weights for LPIPS (``None``: the torch hub cache).
        num_threads: torch CPU threads per process while jobs run; fixed so that results do not depend on how many
            processes share the machine (see the module docstring). On this project's 2-core CPU the built-in
            model's UNet is as fast with 1 thread as with 2, so 2 processes × 1 thread is the fast setting.
        batch_size: images inverted together per job (one UNet call per step for all; ``benchmarks/throughput.py``
            measures the gain). Records are the same up to float rounding, times are per image.
    """

    methods: tuple[str, ...] = DEFAULT_METHODS
    negative_prompt: str = "blurry, low quality, distorted"
    clip_model: str | None = None
    lpips_weights: str | None = None
    num_threads: int = 1
    batch_size: int = 1
    variants: tuple[Variant, ...] = field(init=False)

    def __post_init__(self) -> None:
        if self.num_threads < 1:
            raise DiffinvError(f"num_threads (--threads) must be >= 1, got {self.num_threads}")
        check_integer("batch_size (--batch-size)", self.batch_size, minimum=1)
        object.__setattr__(self, "variants", tuple(parse_variant(m) for m in self.methods))


DEFAULT_INVERSIONS = ("ddim", "null-text", "prompt-tokens", "negative-prompt", "direct")
OBJECT_EDITS = ("recolor", "reshape", "resize", "background")


@dataclass(frozen=True)
class EditorSpec:
    """How an editor edits: from an inversion (prompt-to-prompt variants) or from the image (SDEdit)."""

    name: str
    help: str
    settings: dict[str, Any] = field(default_factory=dict)
    needs_inversion: bool = True
    negative: bool = False  # uses the negative-prompt slot (free-slot inversions only)
    keeps_prompt: bool = False  # target prompt = source prompt (the edit is the negative prompt alone)
    only: tuple[str, ...] = ()  # inversion methods it applies to (empty: all)


EDITORS: dict[str, EditorSpec] = {
    e.name: e
    for e in (
        EditorSpec("p2p", "prompt-to-prompt (replace; refine when token counts differ)"),
        EditorSpec("p2p-blend", "prompt-to-prompt with local blend on the edited words"),
        EditorSpec(
            "prompt",
            "the target prompt from the inverted latent, no attention control",
            {"cross_replace_steps": 0.0, "self_replace_steps": 0.0},
        ),  # fmt: skip
        EditorSpec(
            "p2p-cross",
            "prompt-to-prompt injecting cross-attention maps only (self_replace_steps 0)",
            {"self_replace_steps": 0.0},
        ),  # fmt: skip
        EditorSpec(
            "p2p-self",
            "prompt-to-prompt injecting self-attention maps only (cross_replace_steps 0)",
            {"cross_replace_steps": 0.0},
        ),  # fmt: skip
        EditorSpec("p2p-neg", "prompt-to-prompt with the removed words as negative prompt", negative=True),
        EditorSpec(
            "negative", "the source prompt with the removed words as negative prompt", negative=True, keeps_prompt=True
        ),  # fmt: skip
        EditorSpec(
            "p2p-delta",
            "prompt-to-prompt, learned offsets of every unchanged token (prompt-token recipe b)",
            {"embedding_transfer": "delta"},
            only=("prompt-tokens",),
        ),  # fmt: skip
        EditorSpec(
            "p2p-prefix",
            "prompt-to-prompt, learned offsets of the tokens before the first change only (prompt-token recipe c)",
            {"embedding_transfer": "prefix"},
            only=("prompt-tokens",),
        ),
        EditorSpec(
            "p2p-both",
            "prompt-to-prompt, DirectInversion corrections on both branches",
            {"latent_offsets": "both"},
            only=("direct",),
        ),  # fmt: skip
        EditorSpec("sdedit", "SDEdit: target strokes painted into the edited region, masked", needs_inversion=False),
    )
}
# Which attention injection helps or hurts (docs/editing.md): run on request, not by default.
DIAGNOSTIC_EDITORS = ("p2p-cross", "p2p-self")
DEFAULT_EDITORS = tuple(name for name in EDITORS if name not in DIAGNOSTIC_EDITORS)


@dataclass(frozen=True)
class EditBenchConfig:
    """What ``diffinv edit-bench`` runs.

    Attributes:
        inversions: inversion variant specs (as ``diffinv bench --methods``).
        editors: names from :data:`EDITORS`.
        edits: names from :data:`~diffinv.bench.edit_tasks.EDIT_KINDS`.
        sdedit_strength: t0 of the SDEdit editor.
        seed: SDEdit's generator seed, the stroke paintings' and the edit choices'.
        num_threads: torch CPU threads per process (as the reconstruction bench).
        examples: images of the first this-many scenes are saved under ``OUT/examples``.
        lpips_weights / clip_model: where LPIPS's AlexNet and CLIP weights are (PIE-Bench scores; see
            :mod:`diffinv.metrics`); without them those scores are "unavailable: reason".
    """

    inversions: tuple[str, ...] = DEFAULT_INVERSIONS
    editors: tuple[str, ...] = DEFAULT_EDITORS
    edits: tuple[str, ...] = EDIT_KINDS
    sdedit_strength: float = 0.5
    seed: int = 0
    num_threads: int = 1
    examples: int = 4
    lpips_weights: str | None = None
    clip_model: str | None = None
    variants: tuple[Variant, ...] = field(init=False)

    def __post_init__(self) -> None:
        unknown = [e for e in self.editors if e not in EDITORS]
        if unknown:
            raise DiffinvError(f"unknown editor(s) {', '.join(unknown)}; choose from {', '.join(EDITORS)}")
        unknown = [e for e in self.edits if e not in EDIT_KINDS]
        if unknown:
            raise DiffinvError(f"unknown edit(s) {', '.join(unknown)}; choose from {', '.join(EDIT_KINDS)}")
        if not (0.0 < self.sdedit_strength <= 1.0):
            raise DiffinvError(f"sdedit strength must be in (0, 1], got {self.sdedit_strength}")
        if self.num_threads < 1 or self.examples < 0:
            raise DiffinvError("threads must be ≥ 1 and examples ≥ 0")
        object.__setattr__(self, "variants", tuple(parse_variant(v) for v in self.inversions))
