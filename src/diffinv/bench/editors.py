"""The editing bench's editors: how each makes one edit, and which edits it applies to.

Each editor is an object (:class:`BenchEditor`) listed by name in :data:`diffinv.bench.config.EDITORS`; the name is
the ``editor`` of its records. Prompt-to-prompt editors (:class:`PromptToPrompt` and its kinds) edit from an
inversion, so the bench runs them once per scene and inversion variant; image editors (:class:`StrokesSDEdit`) edit
from the scene's image, in one job per scene whose records have the inversion ``none``. Adding an editor: an object
here (or in a new file) and one line in the registry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import numpy as np
import torch
from PIL import Image

from diffinv import api
from diffinv.bench.edit_tasks import IMAGE_SIZE, EditTask
from diffinv.editing.alignment import token_ids
from diffinv.shapes import stroke_painting

if TYPE_CHECKING:
    from diffusers import StableDiffusionPipeline

    from diffinv.bench.config import EditBenchConfig
    from diffinv.bench.pie import PieSample
    from diffinv.inversion import Inversion


@dataclass(frozen=True)
class EditRequest:
    """One edit the bench asks of an editor.

    Attributes:
        kind: the edit, one of :data:`~diffinv.bench.config.EDIT_KINDS`, or ``pie`` (a PIE-Bench item).
        source_prompt / target_prompt: the captions before and after the edit.
        removed_words: what the edit takes away (the negative prompt of the negative-prompt editors), or ``None``.
        blend_words: the words local blending masks by (empty: none to blend on).
        task: the Shapes task, which image editors paint their guide from (``None`` on PIE-Bench).
    """

    kind: str
    source_prompt: str
    target_prompt: str
    removed_words: str | None
    blend_words: tuple[str, ...]
    task: EditTask | None = None

    @classmethod
    def of_task(cls, task: EditTask) -> EditRequest:
        removed = " ".join(task.old_words) or None
        return cls(task.kind, task.source_prompt, task.target_prompt, removed, task.blend_words, task)

    @classmethod
    def of_pie(cls, sample: PieSample) -> EditRequest:
        """PIE-Bench's blended words that occur in either prompt; its source phrases as the removed words."""
        both = f" {sample.source_prompt} {sample.target_prompt} "
        words = tuple(w for w in sample.blended_words if f" {w} " in both)
        removed = " ".join(sample.edited_words[0]) or None
        return cls("pie", sample.source_prompt, sample.target_prompt, removed, words)


class BenchEditor(Protocol):
    """What the editing bench asks of an editor."""

    help: str
    needs_inversion: bool
    """Edits from an inversion (else from the scene's image, in the jobs of inversion ``none``)."""
    follows_target: bool
    """Aims at the target prompt (else it only removes: success is the removed value gone, and PIE-Bench, which
    scores against the target prompt, does not run it)."""

    def applies_to(self, method: str | None, inversion: Inversion | None, request: EditRequest) -> bool:
        """Whether the editor can make ``request`` from an inversion of ``method`` (``None``: from the image);
        the bench records a skip where it cannot."""
        ...

    def edit(
        self,
        pipe: StableDiffusionPipeline,
        inversion: Inversion | None,
        request: EditRequest,
        config: EditBenchConfig,
        output_type: str = "pil",
    ) -> Any:
        """The edited image as a batch of one, in ``output_type`` (as :func:`diffinv.edit` returns it)."""
        ...


@dataclass(frozen=True)
class PromptToPrompt:
    """Prompt-to-prompt from the inversion (:func:`diffinv.edit`): mode ``replace`` where the prompts have equal
    token counts, else ``refine``; ``settings`` change :class:`~diffinv.editing.EditConfig`'s defaults and
    ``methods`` names the only inversion methods it applies to (empty: all)."""

    help: str
    settings: Mapping[str, Any] = field(default_factory=dict)
    methods: tuple[str, ...] = ()
    needs_inversion: ClassVar[bool] = True
    follows_target: ClassVar[bool] = True

    def applies_to(self, method: str | None, inversion: Inversion | None, request: EditRequest) -> bool:
        return request.kind != "strokes" and (not self.methods or method in self.methods)

    def target_prompt(self, request: EditRequest) -> str:
        return request.target_prompt

    def negative_prompt(self, request: EditRequest) -> str | None:
        return None

    def local_blend(self, request: EditRequest) -> tuple[str, ...] | None:
        return None

    def edit(
        self,
        pipe: StableDiffusionPipeline,
        inversion: Inversion | None,
        request: EditRequest,
        config: EditBenchConfig,
        output_type: str = "pil",
    ) -> Any:
        target = self.target_prompt(request)
        same = len(token_ids(pipe.tokenizer, request.source_prompt)) == len(token_ids(pipe.tokenizer, target))
        settings = dict(self.settings)
        mode = settings.pop("mode", "replace" if same else "refine")
        result = api.edit(pipe, inversion, target, mode=mode, local_blend=self.local_blend(request),
                          negative_prompt=self.negative_prompt(request), output_type=output_type,
                          **settings)  # fmt: skip
        return result.edit


@dataclass(frozen=True)
class BlendedPromptToPrompt(PromptToPrompt):
    """Prompt-to-prompt with local blend on the request's blend words (where it has any)."""

    def applies_to(self, method: str | None, inversion: Inversion | None, request: EditRequest) -> bool:
        return super().applies_to(method, inversion, request) and bool(request.blend_words)

    def local_blend(self, request: EditRequest) -> tuple[str, ...] | None:
        return request.blend_words


@dataclass(frozen=True)
class NegativePromptToPrompt(PromptToPrompt):
    """Prompt-to-prompt with the removed words as the target's negative prompt: only after inversions that leave
    the negative-prompt slot free."""

    def applies_to(self, method: str | None, inversion: Inversion | None, request: EditRequest) -> bool:
        free = inversion is not None and inversion.negative_slot_free
        return super().applies_to(method, inversion, request) and free

    def negative_prompt(self, request: EditRequest) -> str | None:
        return request.removed_words


@dataclass(frozen=True)
class NegativePromptOnly(NegativePromptToPrompt):
    """The source prompt kept, the removed words as negative prompt: the edit is the negative prompt alone."""

    follows_target: ClassVar[bool] = False

    def target_prompt(self, request: EditRequest) -> str:
        return request.source_prompt


@dataclass(frozen=True)
class StrokesSDEdit:
    """SDEdit (:func:`diffinv.sdedit`) at ``EditBenchConfig.sdedit_strength``: the target's stroke painting pasted
    into the edited region, the rest masked; for the ``strokes`` task, the whole scene as strokes, unmasked."""

    help: str
    needs_inversion: ClassVar[bool] = False
    follows_target: ClassVar[bool] = True

    def applies_to(self, method: str | None, inversion: Inversion | None, request: EditRequest) -> bool:
        return request.task is not None

    def edit(
        self,
        pipe: StableDiffusionPipeline,
        inversion: Inversion | None,
        request: EditRequest,
        config: EditBenchConfig,
        output_type: str = "pil",
    ) -> Any:
        task = request.task
        assert task is not None
        if task.kind == "strokes":
            guide, mask = Image.fromarray(stroke_painting(task.source, IMAGE_SIZE, config.seed)), None
        else:
            strokes = Image.fromarray(stroke_painting(task.target, IMAGE_SIZE, config.seed))
            guide = Image.fromarray(np.where(task.region[..., None], np.asarray(strokes), task.source_image))
            mask = Image.fromarray((task.region * 255).astype(np.uint8))
        return api.sdedit(pipe, guide, request.target_prompt, strength=config.sdedit_strength, mask=mask,
                          generator=torch.Generator().manual_seed(config.seed), output_type=output_type)  # fmt: skip


P2P = PromptToPrompt("prompt-to-prompt (replace; refine when token counts differ)")
P2P_BLEND = BlendedPromptToPrompt("prompt-to-prompt with local blend on the edited words")
PROMPT = PromptToPrompt(
    "the target prompt from the inverted latent, no attention control",
    {"cross_replace_steps": 0.0, "self_replace_steps": 0.0},
)
P2P_CROSS = PromptToPrompt(
    "prompt-to-prompt injecting cross-attention maps only (self_replace_steps 0)", {"self_replace_steps": 0.0}
)
P2P_SELF = PromptToPrompt(
    "prompt-to-prompt injecting self-attention maps only (cross_replace_steps 0)", {"cross_replace_steps": 0.0}
)
P2P_NEG = NegativePromptToPrompt("prompt-to-prompt with the removed words as negative prompt")
NEGATIVE = NegativePromptOnly("the source prompt with the removed words as negative prompt")
P2P_DELTA = PromptToPrompt(
    "prompt-to-prompt, learned offsets of every unchanged token (prompt-token recipe b)",
    {"embedding_transfer": "delta"},
    methods=("prompt-tokens",),
)
P2P_PREFIX = PromptToPrompt(
    "prompt-to-prompt, learned offsets of the tokens before the first change only (prompt-token recipe c)",
    {"embedding_transfer": "prefix"},
    methods=("prompt-tokens",),
)
P2P_BOTH = PromptToPrompt(
    "prompt-to-prompt, DirectInversion corrections on both branches", {"latent_offsets": "both"}, methods=("direct",)
)
P2P_SOURCE_MAPS = PromptToPrompt(
    "prompt-to-prompt, cross-attention maps of the source branch itself (the learned embedding's: the official "
    "code's choice, before the map branch)",
    {"cross_attention_maps": "source"},
    methods=("prompt-tokens",),
)
P2P_BLEND_INJECTED = BlendedPromptToPrompt(
    "prompt-to-prompt with local blend whose target maps are read after injection (the official code's order)",
    {"local_blend_maps": "injected"},
)
P2P_REFINE = PromptToPrompt("prompt-to-prompt in refine mode for every edit (target padding from source padding)",
                            {"mode": "refine"})  # fmt: skip
P2P_REFINE_POSITION = PromptToPrompt(
    "prompt-to-prompt in refine mode, target padding from the same source position (the official seq_aligner)",
    {"mode": "refine", "refine_padding": "position"},
)
SDEDIT = StrokesSDEdit("SDEdit: target strokes painted into the edited region, masked")
