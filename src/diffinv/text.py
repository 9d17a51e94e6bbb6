"""Prompt encoding with token accounting.

Stable Diffusion conditions on the text encoder's last hidden state, ``(1, L, D)`` with ``L`` the tokenizer's
``model_max_length`` (77 for CLIP). Positions after the prompt are padding (EOS for SD 1.x). The reference paper
(prompt-token inversion) calls BOS + the prompt's tokens + the first EOS the *semantic* slice; :class:`EncodedPrompt`
reports its length so methods never assume 77.

SDXL encodes the prompt with both text encoders as diffusers' ``StableDiffusionXLPipeline.encode_prompt`` does (the
penultimate hidden states side by side, ``D`` = 768 + 1280, and ``text_encoder_2``'s pooled embedding), packed into
``(1, L + 1, D)`` (:mod:`diffinv.conditioning`). Both CLIP tokenizers split a prompt alike, so the semantic slice is
the same positions in both halves.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import torch
from diffusers import StableDiffusionPipeline
from torch import Tensor

from diffinv.conditioning import pack_pooled
from diffinv.errors import DiffinvError


class PromptTruncatedWarning(UserWarning):
    """The prompt had more tokens than the text encoder accepts; the tail was dropped."""


@dataclass(frozen=True)
class EncodedPrompt:
    """A prompt and its text-encoder output.

    Attributes:
        text: the prompt.
        embeds: ``(1, L, D)`` last hidden state of the text encoder (SDXL: ``(1, L + 1, D)`` with the pooled
            embedding), in the encoder's dtype.
        n_tokens: length of the semantic slice: BOS + prompt tokens + first EOS (after truncation).
        dropped_tokens: how many prompt tokens did not fit in ``L`` positions.
        max_length: ``L``, the token positions.
    """

    text: str
    embeds: Tensor
    n_tokens: int
    dropped_tokens: int
    max_length: int


def expand_prompt(pipe: StableDiffusionPipeline, prompt: str) -> str:
    """``prompt`` with every multi-vector textual-inversion token ``<t>`` written out as ``<t> <t>_1 ... <t>_{k-1}``,
    the tokens diffusers' ``load_textual_inversion`` adds for its k vectors (``maybe_convert_prompt``, which
    diffusers' pipelines apply before tokenizing). Not idempotent: apply it once, to the user's prompt."""
    convert = getattr(pipe, "maybe_convert_prompt", None)
    return prompt if convert is None else convert(prompt, pipe.tokenizer)


@torch.no_grad()
def encode_prompt(pipe: StableDiffusionPipeline, prompt: str, *, strict: bool = False) -> EncodedPrompt:
    """Encode ``prompt`` as Stable Diffusion does (padding to ``model_max_length``).

    Multi-vector textual-inversion tokens are expanded first (:func:`expand_prompt`), so they count all their vectors
    in the semantic slice. Over-long prompts are truncated with a :class:`PromptTruncatedWarning` naming the number
    of dropped tokens, or refused with :class:`DiffinvError` when ``strict``.
    """
    if not isinstance(prompt, str):
        raise DiffinvError(f"the prompt must be a string, got {type(prompt).__name__}")
    tokenizer = pipe.tokenizer
    max_length = int(tokenizer.model_max_length)
    text = expand_prompt(pipe, prompt)
    full = tokenizer(text, truncation=False).input_ids
    dropped = max(0, len(full) - max_length)
    if dropped:
        message = (
            f"the prompt is {len(full)} tokens long and the text encoder takes {max_length}: "
            f"the last {dropped} tokens are dropped"
        )
        if strict:
            raise DiffinvError(message)
        warnings.warn(message, PromptTruncatedWarning, stacklevel=2)
    embeds = text_embeddings(pipe, [text])
    return EncodedPrompt(
        text=prompt,
        embeds=embeds,
        n_tokens=min(len(full), max_length),
        dropped_tokens=dropped,
        max_length=max_length,
    )


@torch.no_grad()
def encode_negative_prompt(pipe: StableDiffusionPipeline, negative_prompt: str | None) -> Tensor:
    """The unconditional slot's embedding ``(1, L, D)``: the negative prompt's, or without one the empty prompt's —
    zeros for a pipeline configured with ``force_zeros_for_empty_prompt`` (SDXL base), as diffusers' pipelines do."""
    if negative_prompt is None and pipe.config.get("force_zeros_for_empty_prompt", False):
        encoder = pipe.text_encoder_2 if has_pooled_embeds(pipe) else pipe.text_encoder
        return torch.zeros(1, *embedding_shape(pipe), dtype=encoder.dtype, device=encoder.device)
    return encode_prompt(pipe, negative_prompt or "").embeds


def has_pooled_embeds(pipe: StableDiffusionPipeline) -> bool:
    """True for a pipeline whose text conditioning includes a pooled embedding (SDXL's ``text_encoder_2``)."""
    return getattr(pipe, "text_encoder_2", None) is not None


def embedding_shape(pipe: StableDiffusionPipeline) -> tuple[int, int]:
    """``(rows, D)`` of one prompt's embedding for ``pipe``: ``(L, D)``, or ``(L + 1, D)`` with a pooled row."""
    rows = int(pipe.tokenizer.model_max_length) + int(has_pooled_embeds(pipe))
    return rows, int(pipe.unet.config.cross_attention_dim)


def text_embeddings(pipe: StableDiffusionPipeline, texts: list[str]) -> Tensor:
    """The text encoder's last hidden state ``(B, L, D)`` for already expanded ``texts`` (:func:`expand_prompt`),
    padded to ``model_max_length`` and truncated silently, as Stable Diffusion's pipelines do (SDXL: both encoders'
    penultimate hidden states and the pooled embedding, ``(B, L + 1, D)``; see the module docstring).
    Differentiable (for training); :func:`encode_prompt` is the checked, gradient-free way to encode a user's
    prompt."""
    if has_pooled_embeds(pipe):
        return _sdxl_embeddings(pipe, texts)
    tokenizer = pipe.tokenizer
    batch = tokenizer(
        texts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
    )
    device = pipe.text_encoder.device
    mask = batch.attention_mask.to(device) if getattr(pipe.text_encoder.config, "use_attention_mask", False) else None
    return pipe.text_encoder(batch.input_ids.to(device), attention_mask=mask)[0]


def _sdxl_embeddings(pipe: StableDiffusionPipeline, texts: list[str]) -> Tensor:
    """SDXL's conditioning (diffusers' ``StableDiffusionXLPipeline.encode_prompt`` without clip skip), packed."""
    hidden_states, pooled = [], None
    for tokenizer, encoder in ((pipe.tokenizer, pipe.text_encoder), (pipe.tokenizer_2, pipe.text_encoder_2)):
        batch = tokenizer(
            texts, padding="max_length", max_length=tokenizer.model_max_length, truncation=True, return_tensors="pt"
        )
        output = encoder(batch.input_ids.to(encoder.device), output_hidden_states=True)
        hidden_states.append(output.hidden_states[-2])
        if output[0].ndim == 2:  # CLIPTextModelWithProjection: the projected pooled embedding comes first
            pooled = output[0]
    if pooled is None:
        raise DiffinvError("the SDXL pipeline's second text encoder gives no pooled embedding (not a projection model)")
    return pack_pooled(torch.cat(hidden_states, dim=-1), pooled)
