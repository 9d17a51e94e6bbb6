"""Putting concepts into a pipeline and taking them out again, through diffusers' own extension points
(``load_textual_inversion`` / ``unload_textual_inversion``), after checking what those do not: the embedding's
width, the tokens' freshness and the model a concept was learned on.

Once loaded, a concept's token works in every prompt diffinv takes (:func:`~diffinv.text.encode_prompt` expands
multi-vector tokens as diffusers' pipelines do).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path

from diffusers import StableDiffusionPipeline

from diffinv.errors import DiffinvError
from diffinv.personalization.base import UNET_PREFIX, Concept
from diffinv.personalization.files import read_concept
from diffinv.pipelines import fingerprint
from diffinv.text import has_pooled_embeds


def load_concept(pipe: StableDiffusionPipeline, concept: Concept | str | Path, token: str | None = None) -> Concept:
    """Add ``concept`` (a :class:`Concept` or an embedding file, see
    :func:`~diffinv.personalization.files.read_concept`) to ``pipe``'s tokenizer and text encoder, optionally under
    another ``token``; returns the concept loaded.

    Raises:
        DiffinvError: the embedding's width is not the text encoder's, one of its tokens is already in the
            vocabulary, or it was learned on another model.
    """
    check_single_text_encoder(pipe)
    concept = (concept if isinstance(concept, Concept) else read_concept(concept)).with_token(token)
    width = int(pipe.text_encoder.get_input_embeddings().weight.shape[1])
    if concept.embeds.shape[1] != width:
        raise DiffinvError(
            f"{concept.token}: the embedding is {concept.embeds.shape[1]} wide, but this text encoder's tokens are "
            f"{width} wide (it was made for another model)"
        )
    check_tokens_free(pipe, concept.tokens)
    if concept.info is not None:
        current = fingerprint(pipe, base_model=True)
        if not concept.info.model_fingerprint.matches(current):
            raise DiffinvError(
                f"{concept.token} was learned on model {concept.info.model_fingerprint}, but the loaded model is "
                f"{current}"
            )
    encoder = pipe.text_encoder
    pipe.load_textual_inversion({concept.token: concept.embeds.to(encoder.dtype)}, token=concept.token)
    if concept.unet_lora is not None:
        try:
            lora = {f"{UNET_PREFIX}{k}": v.to(pipe.unet.dtype) for k, v in concept.unet_lora.items()}
            pipe.load_lora_weights(lora, adapter_name=adapter_name(concept.token))
        except (ValueError, KeyError, RuntimeError) as exc:
            _remove_tokens(pipe, concept.tokens)
            raise DiffinvError(f"{concept.token}: its UNet offsets do not fit this model ({exc})") from None
        _activate_all(pipe)
    return concept


def check_single_text_encoder(pipe: StableDiffusionPipeline) -> None:
    """Raise :class:`DiffinvError` for an SDXL pipeline: concepts live in one text encoder's vocabulary."""
    if has_pooled_embeds(pipe):
        raise DiffinvError(
            "concepts (textual inversion, LoRA, E4T) work with Stable Diffusion 1.x/2.x models; SDXL's two text "
            "encoders are not supported yet"
        )


def check_tokens_free(pipe: StableDiffusionPipeline, tokens: list[str]) -> None:
    """Raise :class:`DiffinvError` if one of ``tokens`` is already in ``pipe``'s vocabulary."""
    vocabulary = pipe.tokenizer.get_vocab()
    taken = [t for t in tokens if t in vocabulary]
    if taken:
        raise DiffinvError(f"the token {taken[0]!r} is already in the vocabulary; choose another token")


def _remove_tokens(pipe: StableDiffusionPipeline, tokens: list[str]) -> None:
    """Take ``tokens`` out of the tokenizer and their rows out of the embedding table (diffusers'
    ``unload_textual_inversion``), keeping the text encoder's ``vocab_size`` equal to its table's rows."""
    pipe.unload_textual_inversion(tokens)
    pipe.text_encoder.config.vocab_size = int(pipe.text_encoder.get_input_embeddings().weight.shape[0])


def adapter_name(token: str) -> str:
    """The LoRA adapter name under which a concept's UNet offsets are loaded."""
    return "concept:" + token.replace(".", "_")


def _activate_all(pipe: StableDiffusionPipeline) -> None:
    """Every loaded adapter active at weight 1 (loading one activates only that one)."""
    names = [name for names in pipe.get_list_adapters().values() for name in names]
    if names:
        pipe.set_adapters(sorted(set(names)))


def unload_concept(pipe: StableDiffusionPipeline, concept: Concept | str) -> None:
    """Remove a loaded concept (or the concept loaded under a token) from ``pipe``: its tokens leave the tokenizer,
    its rows the text encoder's embedding table (the other rows keep their values) and its LoRA adapter the UNet
    (whose weights were never changed: adapters sit beside them)."""
    token = concept.token if isinstance(concept, Concept) else concept
    added = {t.content for t in pipe.tokenizer.added_tokens_decoder.values() if not t.special}
    if token not in added:
        raise DiffinvError(f"no concept is loaded under the token {token!r}")
    tokens = [token]
    while f"{token}_{len(tokens)}" in added:
        tokens.append(f"{token}_{len(tokens)}")
    _remove_tokens(pipe, tokens)
    name = adapter_name(token)
    if any(name in names for names in pipe.get_list_adapters().values()):
        pipe.delete_adapters(name)
        if not any(pipe.get_list_adapters().values()):
            pipe.unload_lora_weights()  # no adapter left: the UNet's layers become plain again
        _activate_all(pipe)


@contextlib.contextmanager
def loaded(pipe: StableDiffusionPipeline, concepts: Sequence[Concept]) -> Iterator[list[Concept]]:
    """Load ``concepts`` for the duration of the block; afterwards the tokenizer holds its former tokens and the
    text encoder its former embedding rows, bit for bit, whatever happened inside."""
    done: list[Concept] = []
    try:
        for concept in concepts:
            done.append(load_concept(pipe, concept))
        yield done
    finally:
        for concept in reversed(done):
            unload_concept(pipe, concept)
