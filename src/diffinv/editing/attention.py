"""Attention control through diffusers' public attention-processor API.

:func:`attention_control` installs one :class:`ControlledAttnProcessor` per attention layer of a
``UNet2DConditionModel`` with ``unet.set_attn_processor`` and puts the model's own processors back when the block
ends, also on error. A processor hands the attention probabilities of the layers its controller asks for to
:meth:`AttentionController.edit_probs` and runs every other layer with the layer's original processor, so
uncontrolled layers cost what they cost without editing. Map sizes come from each layer's query length and the
latent size, never from a fixed resolution.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

import torch
from diffusers import UNet2DConditionModel
from diffusers.models.attention_processor import Attention
from torch import Tensor

from diffinv.denoiser import Denoiser


@dataclass(frozen=True)
class Layer:
    """An attention layer as a controller sees it: its processor name, ``cross`` (attends to the text, i.e. it was
    given ``encoder_hidden_states``) and the ``(height, width)`` of its attention map."""

    name: str
    cross: bool
    size: tuple[int, int]


def map_size(queries: int, latent_size: tuple[int, int]) -> tuple[int, int]:
    """The ``(height, width)`` of a UNet level with ``queries`` positions, for latents of ``latent_size``: the
    latent downsampled ``2^k`` times (each stride-2 step rounds up, as a padded convolution does)."""
    height, width = latent_size
    while height * width > queries and height > 1 and width > 1:
        height, width = -(-height // 2), -(-width // 2)
    if height * width != queries:
        raise ValueError(f"{queries} attention positions match no level of a {latent_size} latent")
    return height, width


class AttentionController(Protocol):
    """What a :class:`ControlledAttnProcessor` asks: whether to hand over a layer's probabilities, and what to do.

    ``latent_size`` is the ``(h, w)`` of the latents being denoised; map sizes are derived from it.
    """

    latent_size: tuple[int, int]

    def wants(self, layer: Layer) -> bool: ...

    def edit_probs(self, probs: Tensor, layer: Layer) -> Tensor:
        """``probs`` ``(B, heads, Q, K)`` → the probabilities the layer uses (same shape)."""
        ...


class ControlledAttnProcessor:
    """diffusers' attention computation with the probabilities exposed (as ``AttnProcessor``), for layers the
    controller wants; the layer's original processor otherwise."""

    def __init__(self, name: str, original: Any, controller: AttentionController) -> None:
        self.name = name
        self.original = original
        self.controller = controller

    def __call__(
        self,
        attn: Attention,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor | None = None,
        attention_mask: Tensor | None = None,
        temb: Tensor | None = None,
        **kwargs: Any,
    ) -> Tensor:
        queries = hidden_states.shape[1] if hidden_states.ndim == 3 else math.prod(hidden_states.shape[2:])
        layer = Layer(self.name, encoder_hidden_states is not None, map_size(queries, self.controller.latent_size))
        if not self.controller.wants(layer):
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, temb, **kwargs)
        return self._controlled(attn, hidden_states, encoder_hidden_states, attention_mask, temb, layer)

    def _controlled(
        self,
        attn: Attention,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor | None,
        attention_mask: Tensor | None,
        temb: Tensor | None,
        layer: Layer,
    ) -> Tensor:
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channel, height * width).transpose(1, 2)
        batch, length, _ = hidden_states.shape if encoder_hidden_states is None else encoder_hidden_states.shape
        attention_mask = attn.prepare_attention_mask(attention_mask, length, batch)
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.head_to_batch_dim(attn.to_k(encoder_hidden_states))
        value = attn.head_to_batch_dim(attn.to_v(encoder_hidden_states))
        probs = attn.get_attention_scores(attn.head_to_batch_dim(query), key, attention_mask)
        shaped = probs.view(batch, attn.heads, *probs.shape[1:])
        probs = self.controller.edit_probs(shaped, layer).reshape(probs.shape).to(value.dtype)
        hidden_states = attn.batch_to_head_dim(torch.bmm(probs, value))
        hidden_states = attn.to_out[1](attn.to_out[0](hidden_states))
        if input_ndim == 4:
            hidden_states = hidden_states.transpose(-1, -2).reshape(batch, channel, height, width)
        if attn.residual_connection:
            hidden_states = hidden_states + residual
        return hidden_states / attn.rescale_output_factor


@contextlib.contextmanager
def attention_control(unet: UNet2DConditionModel, controller: AttentionController) -> Iterator[None]:
    """Route every attention layer of ``unet`` through ``controller`` inside the block; restore the original
    processors afterwards, whatever happens."""
    originals = dict(unet.attn_processors)
    # set_attn_processor consumes the dict it is given: hand it copies.
    unet.set_attn_processor({name: ControlledAttnProcessor(name, p, controller) for name, p in originals.items()})
    try:
        yield
    finally:
        unet.set_attn_processor(dict(originals))


class _SizeRecorder:
    """A controller that takes nothing over and notes the map size of every cross-attention layer."""

    def __init__(self, latent_size: tuple[int, int]) -> None:
        self.latent_size = latent_size
        self.sizes: set[tuple[int, int]] = set()

    def wants(self, layer: Layer) -> bool:
        if layer.cross:
            self.sizes.add(layer.size)
        return False

    def edit_probs(self, probs: Tensor, layer: Layer) -> Tensor:
        return probs


@torch.no_grad()
def cross_attention_sizes(denoiser: Denoiser, latents: Tensor, embeds: Tensor) -> list[tuple[int, int]]:
    """The map sizes of the denoiser's UNet's cross-attention layers for ``latents`` ``(1, C, h, w)``, coarsest first
    (one forward pass at the first step with ``embeds`` ``(1, L, D)``)."""
    recorder = _SizeRecorder(tuple(latents.shape[-2:]))
    with attention_control(denoiser.unet, recorder):
        denoiser.epsilon(latents.to(denoiser.compute_dtype), 0, embeds.to(denoiser.compute_dtype))
    return sorted(recorder.sizes, key=math.prod)
