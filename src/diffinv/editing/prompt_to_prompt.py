"""Prompt-to-prompt editing of an inversion (Hertz et al. 2022), for every inversion method.

The source branch is the inversion's reconstruction and the target branch the edit; both run in one batched UNet
call per step (four rows with guidance: unconditional source, unconditional target, conditional source,
conditional target), through the shared sampling loop with the attention controller of :mod:`.attention` and the
local blend as its step callback. What each inversion method contributes is read from the inversion's data, so no
method is special-cased:

- per-step unconditional embeddings (null-text: Mokady et al. 2022's editing; negative-prompt inversion: the
  source prompt, Miyake et al. 2023) serve both branches;
- per-step latent corrections (DirectInversion, Ju et al. 2023) go to the source branch only, as in their
  "DirectInversion + P2P" (or to both branches, ``EditConfig.latent_offsets``);
- a learned conditional embedding (prompt-token inversion) reaches the target as ``EditConfig.embedding_transfer``
  says: ``plain`` (default) encodes the target prompt alone, ``delta`` adds each unchanged token's learned offset,
  ``prefix`` only those of the unchanged tokens before the first changed one; an unchanged prompt keeps the learned
  embedding under every recipe, so reweight- and negative-prompt-only edits start from the reconstruction;
- with ``EditConfig.cross_attention_maps="prompt"`` and a learned conditional embedding, a third branch runs the
  source prompt's own encoder output on the source branch's latents (reset to them after every step), and its
  cross-attention maps, not the learned embedding's, are injected into the target.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from diffusers import StableDiffusionPipeline
from torch import Tensor
from transformers import PreTrainedTokenizerBase

from diffinv.denoiser import Denoiser, Schedule
from diffinv.editing.alignment import TokenMapping, word_positions
from diffinv.editing.attention import Layer, attention_control, cross_attention_sizes
from diffinv.editing.config import EditConfig
from diffinv.editing.local_blend import LocalBlend
from diffinv.editing.registry import MODES
from diffinv.errors import DiffinvError
from diffinv.inversion import Inversion
from diffinv.sampling import denoise
from diffinv.text import encode_negative_prompt, encode_prompt, expand_prompt


class PromptToPromptController:
    """Injects each source's attention into its target branch, for ``N`` edits batched together. The conditional
    rows of every attention batch are the last ``N · branches``, pair by pair: ``[source, target]``, or
    ``[source, target, maps]`` with a map branch, whose cross-attention maps then replace the source's;
    unconditional rows are left alone, as in the official implementation."""

    def __init__(
        self,
        mappings: Sequence[TokenMapping],
        equalizers: Sequence[Tensor | None],
        config: EditConfig,
        num_steps: int,
        latent_size: tuple[int, int],
        level: tuple[int, int],
        blends: Sequence[LocalBlend | None],
        branches: int = 2,
    ) -> None:
        """One mapping, equalizer and blend per edit; ``level``: the map size of ``config.attention_level``
        (self-attention is injected at it and coarser); ``branches``: 2, or 3 with map branches."""
        self.latent_size = latent_size
        self.pairs = len(mappings)
        self.branches = branches
        self.index = torch.tensor([m.source_index for m in mappings])
        self.inherits = torch.tensor([m.inherits for m in mappings])
        length = self.index.shape[1]
        self.equalizer = None
        if any(e is not None for e in equalizers):
            self.equalizer = torch.stack([torch.ones(length) if e is None else e for e in equalizers])
        self.blends = list(blends)
        self.blend_injected = config.local_blend_maps == "injected"
        self.blend_size = next((b.size for b in self.blends if b is not None), None)
        self.step = 0
        self.cross_until = int(config.cross_replace_steps * num_steps)
        self.self_until = int(config.self_replace_steps * num_steps)
        self.self_max_area = math.prod(level)

    def wants(self, layer: Layer) -> bool:
        if layer.cross:
            return self.step < self.cross_until or layer.size == self.blend_size
        return self.step < self.self_until and math.prod(layer.size) <= self.self_max_area

    def edit_probs(self, probs: Tensor, layer: Layer) -> Tensor:
        first = len(probs) - self.pairs * self.branches
        cond = probs[first:].unflatten(0, (self.pairs, self.branches))
        maps = cond[:, -1] if self.branches == 3 else cond[:, 0]  # the cross-attention maps the targets inherit
        if not layer.cross:
            target = cond[:, 0]
        elif self.step < self.cross_until:
            target = self.cross_attention(maps, cond[:, 1])
        else:
            target = None
        if layer.cross and layer.size == self.blend_size:
            blended = target if self.blend_injected and target is not None else cond[:, 1]
            for k, blend in enumerate(self.blends):
                if blend is not None:
                    blend.store(torch.stack([maps[k], blended[k]]))
        if target is None:
            return probs
        edited = probs.clone()
        edited[first + 1 :: self.branches] = target
        return edited

    def cross_attention(self, source: Tensor, target: Tensor) -> Tensor:
        """``(N, heads, Q, L)`` maps of the sources and targets → the targets' edited maps."""
        index = self.index.to(source.device)[:, None, None, :].expand(-1, *source.shape[1:3], -1)
        inherits = self.inherits.to(source)[:, None, None, :]
        edited = source.gather(-1, index) * inherits + target * (1 - inherits)
        return edited if self.equalizer is None else edited * self.equalizer.to(source)[:, None, None, :]

    def after_step(self, i: int, latents: Tensor) -> Tensor:
        """After step ``i``: each edit's local blend of ``[source, target]``; map branches restart from their
        source."""
        self.step = i + 1
        rows = latents.unflatten(0, (self.pairs, self.branches))
        pairs = [rows[k, :2] if blend is None else blend(i, rows[k, :2]) for k, blend in enumerate(self.blends)]
        if self.branches == 3:
            pairs = [torch.cat([pair, pair[:1]]) for pair in pairs]
        return torch.cat(pairs)


def _equalizer(tokenizer: PreTrainedTokenizerBase, target: str, config: EditConfig) -> Tensor | None:
    if not config.reweight:
        return None
    equalizer = torch.ones(int(tokenizer.model_max_length))
    for word, scale in config.reweight:
        positions = word_positions(tokenizer, target, word)
        if not positions:
            raise DiffinvError(f"the reweight word {word!r} is not in the target prompt {target!r}")
        equalizer[positions] = float(scale)
    return equalizer


def _local_blend(
    tokenizer: PreTrainedTokenizerBase,
    source: str,
    target: str,
    config: EditConfig,
    num_steps: int,
    level: tuple[int, int],
) -> LocalBlend | None:
    if not config.local_blend:
        return None
    masks = torch.zeros(2, int(tokenizer.model_max_length))
    for word in config.local_blend:
        found = [word_positions(tokenizer, prompt, word) for prompt in (source, target)]
        if not any(found):
            raise DiffinvError(f"the local-blend word {word!r} is in neither the source nor the target prompt")
        for row, positions in enumerate(found):
            masks[row, positions] = 1.0
    return LocalBlend(masks, level, config.blend_threshold, int(config.blend_start * num_steps))


def _pair(source: Tensor, target: Tensor) -> Tensor:
    """``(S_a, L, D)`` and ``(S_b, L, D)`` (S ∈ {1, T}) → ``(S, 2, L, D)`` for the sampling loop."""
    steps = max(source.shape[0], target.shape[0])
    return torch.stack([source.expand(steps, -1, -1), target.expand(steps, -1, -1)], dim=1)


def branch_embeddings(
    pipe: StableDiffusionPipeline,
    inversion: Inversion,
    target_prompt: str,
    mapping: TokenMapping,
    config: EditConfig,
    negative_prompt: str | None,
) -> tuple[Tensor, Tensor]:
    """Conditional and unconditional embeddings ``(S, 2, L, D)`` of ``[source, target]``."""
    source = inversion.prompt_embeds
    target = encode_prompt(pipe, target_prompt).embeds.to(source)
    if all(mapping.same_token):
        target = source  # the prompt is unchanged: the target is conditioned exactly as the reconstruction
    elif config.embedding_transfer != "plain":
        offsets = source - encode_prompt(pipe, inversion.settings.prompt).embeds.to(source)
        keep = torch.tensor(mapping.same_token)
        changed = (~keep).nonzero()
        if config.embedding_transfer == "prefix" and len(changed):
            keep[int(changed[0]) :] = False  # CLIP is causal: only tokens before the first change encode alike
        # rows past the token positions (SDXL's pooled embedding) carry their offset over unchanged
        rows = range(len(mapping.source_index), source.shape[1])
        index = torch.tensor([*mapping.source_index, *rows], device=source.device)
        keep = torch.cat([keep, torch.ones(len(rows), dtype=torch.bool)])
        target = target + offsets.index_select(1, index) * keep.to(source)[None, :, None]
    if inversion.negative_prompt_embeds is not None:
        uncond = _pair(inversion.negative_prompt_embeds, inversion.negative_prompt_embeds)
    else:
        empty = encode_negative_prompt(pipe, None).to(source)
        negative = empty if negative_prompt is None else encode_negative_prompt(pipe, negative_prompt).to(source)
        uncond = _pair(empty, negative)
    return _pair(source, target), uncond


def _map_branch(
    pipe: StableDiffusionPipeline, inversion: Inversion, config: EditConfig, mapping: TokenMapping
) -> Tensor | None:
    """``(1, L, D)``: the source prompt's own encoder output, the map branch's conditioning, when
    ``config.cross_attention_maps`` asks for it and it differs from the source branch's (a learned conditional
    embedding) and cross-attention maps are injected at all; else ``None``."""
    if config.cross_attention_maps != "prompt" or config.cross_replace_steps == 0 or all(mapping.same_token):
        return None
    plain = encode_prompt(pipe, inversion.settings.prompt).embeds.to(inversion.prompt_embeds)
    if inversion.prompt_embeds.shape[0] == 1 and torch.equal(inversion.prompt_embeds, plain):
        return None
    return plain


@dataclass
class _Prepared:
    """One edit, ready to batch: its ``(S, branches, L, D)`` embeddings, ``(T, branches, C, h, w)`` latent
    corrections (or ``None``), token mapping, equalizer and local blend."""

    cond: Tensor
    uncond: Tensor
    offsets: Tensor | None
    mapping: TokenMapping
    equalizer: Tensor | None
    blend: LocalBlend | None

    def widened(self, branches: int, steps: int, offsets_shape: tuple[int, ...] | None) -> _Prepared:
        """The same edit with ``branches`` rows (a map branch that repeats the source: the same maps), per-step
        embeddings when ``steps`` > 1, and zero corrections where others have some."""
        cond, uncond, offsets = self.cond, self.uncond, self.offsets
        if cond.shape[1] < branches:
            cond, uncond = torch.cat([cond, cond[:, :1]], 1), torch.cat([uncond, uncond[:, :1]], 1)
            offsets = None if offsets is None else torch.cat([offsets, offsets[:, :1]], 1)
        if offsets is None and offsets_shape is not None:
            offsets = torch.zeros(offsets_shape[0], branches, *offsets_shape[2:], dtype=cond.dtype)
        cond, uncond = cond.expand(steps, -1, -1, -1), uncond.expand(steps, -1, -1, -1)
        return _Prepared(cond, uncond, offsets, self.mapping, self.equalizer, self.blend)


def _prepare(
    pipe: StableDiffusionPipeline,
    inversion: Inversion,
    target_prompt: str,
    config: EditConfig,
    negative_prompt: str | None,
    level: tuple[int, int],
) -> _Prepared:
    inversion.check_negative_prompt(negative_prompt)
    if not (isinstance(target_prompt, str) and target_prompt.strip()):
        raise DiffinvError("the target prompt must be a non-empty string")
    settings, tokenizer = inversion.settings, pipe.tokenizer
    # token positions as the text encoder sees them (multi-vector textual-inversion tokens written out)
    source_tokens, target_tokens = expand_prompt(pipe, settings.prompt), expand_prompt(pipe, target_prompt)
    mapping = MODES[config.mode].mapping(tokenizer, source_tokens, target_tokens, config)
    equalizer = _equalizer(tokenizer, target_tokens, config)
    cond, uncond = branch_embeddings(pipe, inversion, target_prompt, mapping, config, negative_prompt)
    blend = _local_blend(tokenizer, source_tokens, target_tokens, config, settings.num_inference_steps, level)
    offsets = inversion.latent_offsets
    if offsets is not None:
        offsets = torch.stack([offsets, offsets if config.latent_offsets == "both" else torch.zeros_like(offsets)], 1)
    map_branch = _map_branch(pipe, inversion, config, mapping)
    if map_branch is not None:  # [source, target, maps]: the third row follows the source
        cond = torch.cat([cond, map_branch[None].expand(cond.shape[0], 1, -1, -1).to(cond)], 1)
        uncond = torch.cat([uncond, uncond[:, :1]], 1)
        offsets = None if offsets is None else torch.cat([offsets, offsets[:, :1]], 1)
    return _Prepared(cond, uncond, offsets, mapping, equalizer, blend)


def batch_key(inversion: Inversion) -> str:
    """Inversions with equal keys can be edited in one batch: the same schedule, steps, guidance and size."""
    settings = inversion.settings
    return json.dumps(
        [
            settings.scheduler_config,
            settings.num_inference_steps,
            settings.guidance_scale,
            settings.height,
            settings.width,
        ],  # fmt: skip
        sort_keys=True,
        default=str,
    )


def prompt_to_prompt(
    pipe: StableDiffusionPipeline,
    inversions: Sequence[Inversion],
    target_prompts: Sequence[str],
    config: EditConfig,
    *,
    negative_prompts: Sequence[str | None] | None = None,
    progress: bool = False,
) -> tuple[Tensor, list[Tensor | None]]:
    """Denoise ``[source, target]`` of every inversion from its latent, all edits in one batched UNet call per
    step: ``(N, 2, C, h, w)`` latents and each edit's blend mask. The inversions must share a :func:`batch_key`.

    Raises:
        DiffinvError: a model other than an inversion's, inversions that cannot share a batch, a negative prompt
            after a method occupying its slot, an empty target prompt, prompts the mode cannot pair, reweight
            words not in the target, local-blend words in neither prompt.
    """
    if not inversions or len(target_prompts) != len(inversions):
        raise DiffinvError("give one target prompt per inversion")
    negatives = list(negative_prompts) if negative_prompts is not None else [None] * len(inversions)
    for inversion in inversions:
        inversion.check_model(pipe)
    if len({batch_key(inversion) for inversion in inversions}) > 1:
        raise DiffinvError("inversions edited in one batch must share their scheduler, steps, guidance and size")
    settings = inversions[0].settings
    num_steps = settings.num_inference_steps
    denoiser = Denoiser.for_pipeline(pipe, Schedule.from_config(settings.scheduler_config, num_steps))
    dtype, device = denoiser.compute_dtype, denoiser.device
    first = inversions[0]
    levels = cross_attention_sizes(denoiser, first.latents.to(device), first.prompt_embeds[:1].to(device))
    if not levels:
        raise DiffinvError("the UNet has no cross-attention layers, and prompt-to-prompt edits through them")
    level = levels[min(config.attention_level, len(levels) - 1)]
    prepared = [
        _prepare(pipe, inversion, target, config, negative, level)
        for inversion, target, negative in zip(inversions, target_prompts, negatives, strict=True)
    ]
    branches = max(edit.cond.shape[1] for edit in prepared)
    steps = max(max(edit.cond.shape[0], edit.uncond.shape[0]) for edit in prepared)
    offsets_shape = next((tuple(edit.offsets.shape) for edit in prepared if edit.offsets is not None), None)
    prepared = [edit.widened(branches, steps, offsets_shape) for edit in prepared]
    cond = torch.cat([edit.cond for edit in prepared], 1)
    uncond = torch.cat([edit.uncond for edit in prepared], 1)
    offsets = None if offsets_shape is None else torch.cat([edit.offsets for edit in prepared], 1)
    latents = torch.cat([inversion.latents.expand(branches, -1, -1, -1) for inversion in inversions])
    latent_size = tuple(latents.shape[-2:])
    controller = PromptToPromptController(
        [edit.mapping for edit in prepared],
        [edit.equalizer for edit in prepared],
        config,
        num_steps,
        latent_size,
        level,
        [edit.blend for edit in prepared],
        branches,
    )
    with attention_control(pipe.unet, controller):
        result = denoise(
            denoiser,
            latents,
            cond.to(device, dtype),
            uncond.to(device, dtype),
            settings.guidance_scale,
            latent_offsets=offsets,
            callback=controller.after_step,
            progress=progress,
        )
    pairs = result.unflatten(0, (len(inversions), branches))[:, :2]
    return pairs, [None if edit.blend is None else edit.blend.mask for edit in prepared]
