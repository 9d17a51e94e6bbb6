"""How a text conditioning is laid out in one tensor, for Stable Diffusion 1.x/2.x and SDXL alike.

Every method, the sampling loop and the inversion file handle one embedding tensor per prompt, ``(B, L, D)``, and
slice, stack, optimise and store it as a whole. Stable Diffusion 1.x/2.x condition on exactly that: the text
encoder's hidden states, ``L`` token positions of width ``D``. SDXL also conditions on a *pooled* text embedding
``(B, P)`` (``text_encoder_2``'s projected EOS state; ``P`` = 1280 for SDXL base, ``D`` = 2048 = 768 + 1280, the two
encoders' hidden states side by side). So that a pooled embedding travels with its prompt everywhere the hidden
states go (per-step embeddings, the classifier-free-guidance batch, null-text's optimisation of the unconditional
slot, the inversion file), SDXL's conditioning is one extra row:

    embeds = [hidden states (L rows) ; pooled embedding in the first P columns, zeros after (1 row)]   (B, L + 1, D)

:func:`pack_pooled` builds it, :func:`split_pooled` takes it apart for the UNet (in :class:`~diffinv.denoiser.Denoiser`)
and for diffusers' SDXL pipelines (``prompt_embeds``, ``pooled_prompt_embeds``).
"""

from __future__ import annotations

import torch
from diffusers import UNet2DConditionModel
from torch import Tensor

from diffinv.errors import DiffinvError

# SDXL's size conditioning: original size (h, w), crop top-left (y, x), target size (h, w).
TIME_ID_COUNT = 6


def unet_pooled_width(unet: UNet2DConditionModel) -> int:
    """``P``, the width of the pooled text embedding ``unet`` takes beside its time ids (SDXL's ``text_time``
    addition embedding), or 0 for a UNet conditioned on hidden states only (Stable Diffusion 1.x/2.x)."""
    config = unet.config
    if config.addition_embed_type != "text_time":
        return 0
    return int(config.projection_class_embeddings_input_dim) - TIME_ID_COUNT * int(config.addition_time_embed_dim)


def pack_pooled(hidden_states: Tensor, pooled: Tensor) -> Tensor:
    """``(B, L, D)`` hidden states and ``(B, P)`` pooled embeddings (P ≤ D) → ``(B, L + 1, D)`` (module docstring)."""
    batch, _, width = hidden_states.shape
    if pooled.ndim != 2 or pooled.shape[0] != batch or pooled.shape[1] > width:
        shapes = f"{tuple(pooled.shape)} and {tuple(hidden_states.shape)}"
        raise ValueError(f"pooled embeddings and hidden states do not fit together: {shapes}")
    row = hidden_states.new_zeros(batch, 1, width)
    row[:, 0, : pooled.shape[1]] = pooled.to(row)
    return torch.cat([hidden_states, row], dim=1)


def split_pooled(embeds: Tensor, pooled_width: int) -> tuple[Tensor, Tensor | None]:
    """``(..., L + 1, D)`` → hidden states ``(..., L, D)`` and pooled ``(..., P)`` for ``pooled_width`` P > 0; a
    tensor without pooled row (``pooled_width`` 0) comes back whole with ``None``."""
    if pooled_width == 0:
        return embeds, None
    if embeds.shape[-1] < pooled_width or embeds.shape[-2] < 2:
        raise DiffinvError(
            f"text embeddings of shape {tuple(embeds.shape)} carry no pooled embedding of width {pooled_width}"
        )
    return embeds[..., :-1, :], embeds[..., -1, :pooled_width]
