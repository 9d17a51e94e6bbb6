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

import math

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
    """Injects the source's attention into the target branch (the last rows of every attention batch are the
    conditional ``[source, target]``, or ``[source, target, maps]`` with a map branch, whose cross-attention maps
    then replace the source's; unconditional rows are left alone, as the official implementation)."""

    def __init__(
        self,
        mapping: TokenMapping,
        equalizer: Tensor | None,
        config: EditConfig,
        num_steps: int,
        latent_size: tuple[int, int],
        level: tuple[int, int],
        blend: LocalBlend | None,
        branches: int = 2,
    ) -> None:
        """``level``: the map size of ``config.attention_level``; self-attention is injected at it and coarser.
        ``branches``: 2, or 3 with a map branch."""
        self.latent_size = latent_size
        self.branches = branches
        self.mapping = mapping
        self.equalizer = equalizer
        self.blend = blend
        self.step = 0
        self.cross_until = int(config.cross_replace_steps * num_steps)
        self.self_until = int(config.self_replace_steps * num_steps)
        self.self_max_area = math.prod(level)

    def wants(self, layer: Layer) -> bool:
        if layer.cross:
            return self.step < self.cross_until or (self.blend is not None and layer.size == self.blend.size)
        return self.step < self.self_until and math.prod(layer.size) <= self.self_max_area

    def edit_probs(self, probs: Tensor, layer: Layer) -> Tensor:
        cond = probs[len(probs) - self.branches :]
        maps = cond[-1] if self.branches == 3 else cond[0]  # the cross-attention maps the target inherits
        if layer.cross and self.blend is not None and layer.size == self.blend.size:
            self.blend.store(torch.stack([maps, cond[1]]))
        if not layer.cross:
            target = cond[0]
        elif self.step < self.cross_until:
            target = self.cross_attention(maps, cond[1])
        else:
            return probs
        edited = probs.clone()
        edited[len(probs) - self.branches + 1] = target
        return edited

    def cross_attention(self, source: Tensor, target: Tensor) -> Tensor:
        """``(heads, Q, L)`` maps of the source and target → the target's edited maps."""
        index = torch.tensor(self.mapping.source_index, device=source.device)
        inherits = torch.tensor(self.mapping.inherits).to(source)
        edited = source.index_select(-1, index) * inherits + target * (1 - inherits)
        return edited if self.equalizer is None else edited * self.equalizer.to(source)

    def after_step(self, i: int, latents: Tensor) -> Tensor:
        """After step ``i``: the local blend of ``[source, target]``; a map branch restarts from the source."""
        self.step = i + 1
        pair = latents[:2] if self.blend is None else self.blend(i, latents[:2])
        return pair if self.branches == 2 else torch.cat([pair, pair[:1]])


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


def prompt_to_prompt(
    pipe: StableDiffusionPipeline,
    inversion: Inversion,
    target_prompt: str,
    config: EditConfig,
    *,
    negative_prompt: str | None = None,
    progress: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """Denoise ``[source, target]`` from the inversion's latent: ``(2, C, h, w)`` latents and the blend mask.

    Raises:
        DiffinvError: a model other than the inversion's, a negative prompt after a method occupying its slot,
            an empty target prompt, prompts the mode cannot pair, reweight words not in the target, local-blend
            words in neither prompt.
    """
    inversion.check_model(pipe)
    inversion.check_negative_prompt(negative_prompt)
    if not (isinstance(target_prompt, str) and target_prompt.strip()):
        raise DiffinvError("the target prompt must be a non-empty string")
    settings = inversion.settings
    tokenizer = pipe.tokenizer
    num_steps = settings.num_inference_steps
    # token positions as the text encoder sees them (multi-vector textual-inversion tokens written out)
    source_tokens, target_tokens = expand_prompt(pipe, settings.prompt), expand_prompt(pipe, target_prompt)
    mapping = MODES[config.mode].mapping(tokenizer, source_tokens, target_tokens)
    equalizer = _equalizer(tokenizer, target_tokens, config)
    denoiser = Denoiser.for_pipeline(pipe, Schedule.from_config(settings.scheduler_config, num_steps))
    dtype, device = denoiser.compute_dtype, denoiser.device
    cond, uncond = branch_embeddings(pipe, inversion, target_prompt, mapping, config, negative_prompt)
    levels = cross_attention_sizes(denoiser, inversion.latents.to(device), cond[0, :1].to(device))
    if not levels:
        raise DiffinvError("the UNet has no cross-attention layers, and prompt-to-prompt edits through them")
    level = levels[min(config.attention_level, len(levels) - 1)]
    blend = _local_blend(tokenizer, source_tokens, target_tokens, config, num_steps, level)
    offsets = inversion.latent_offsets
    if offsets is not None:
        offsets = torch.stack([offsets, offsets if config.latent_offsets == "both" else torch.zeros_like(offsets)], 1)
    map_branch = _map_branch(pipe, inversion, config, mapping)
    if map_branch is not None:  # [source, target, maps]: the third row follows the source
        cond = torch.cat([cond, map_branch[None].expand(cond.shape[0], 1, -1, -1).to(cond)], 1)
        uncond = torch.cat([uncond, uncond[:, :1]], 1)
        offsets = None if offsets is None else torch.cat([offsets, offsets[:, :1]], 1)
    branches = cond.shape[1]
    latents = inversion.latents.expand(branches, -1, -1, -1)
    latent_size = tuple(latents.shape[-2:])
    controller = PromptToPromptController(mapping, equalizer, config, num_steps, latent_size, level, blend, branches)
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
    return result[:2], None if blend is None else blend.mask
