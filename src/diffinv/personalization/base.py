"""What every personalization method returns: a :class:`Concept` (a new token's embedding vectors and how they were
learned), and its files.

A concept file is diffusers' textual-inversion format — one ``.safetensors`` tensor ``{token: (k, D)}`` — with
diffinv's description in the file's metadata, so ``StableDiffusionPipeline.load_textual_inversion(path)`` loads it
unchanged and :func:`~diffinv.personalization.files.read_concept` reads the description back.
:meth:`Concept.export_a1111` writes the AUTOMATIC1111 web UI's embedding format (``{"emb_params": (k, D)}``).

A concept that also changes the UNet (LoRA, E4T) holds low-rank weight offsets in peft's LoRA format; its file adds
them as ``unet.<module>.lora_A/B.weight`` tensors beside the token's, and :meth:`Concept.export_lora` writes them
alone, the file ``StableDiffusionPipeline.load_lora_weights(path)`` loads.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import torch
from safetensors.torch import save_file
from torch import Tensor

from diffinv.config import Config
from diffinv.errors import DiffinvError, check_integer, check_number
from diffinv.io import atomic_write
from diffinv.personalization.config import MAX_VECTORS, check_property
from diffinv.pipelines import ModelFingerprint

FORMAT_NAME: Final[str] = "diffinv.concept"
FORMAT_VERSION: Final[int] = 1
MAX_ABS_VALUE: Final[float] = 1e4  # token embeddings are O(0.01)-O(1); larger values in a file are garbage
A1111_KEY: Final[str] = "emb_params"
UNET_PREFIX: Final[str] = "unet."
LORA_SUFFIXES: Final[tuple[str, str]] = (".lora_A.weight", ".lora_B.weight")


def check_token(token: object) -> str:
    """A new token: a non-empty string without whitespace or ``{}`` (the caption placeholder)."""
    if not isinstance(token, str) or not token or token != "".join(token.split()) or "{}" in token:
        raise DiffinvError(f"the token must be a non-empty word without spaces or {{}}, got {token!r}")
    return token


def extra_tokens(token: str, num_vectors: int) -> list[str]:
    """The tokens diffusers adds for a ``num_vectors``-vector embedding: ``token``, ``token_1`` … ``token_{k-1}``."""
    return [token] + [f"{token}_{i}" for i in range(1, num_vectors)]


@dataclass(frozen=True)
class ConceptInfo(Config):
    """How a concept was learned (a diffinv concept file's metadata, in :meth:`~diffinv.config.Config.to_dict`'s form;
    absent for embeddings made elsewhere).

    Attributes:
        method: the personalization method's name (``ti``).
        init_word: the word whose embedding initialised the vectors.
        property: ``object`` or ``style``.
        model_fingerprint: the model it was learned on (:func:`~diffinv.pipelines.fingerprint` with
            ``base_model``, so other concepts loaded beside it do not change it).
        config: the method's settings.
        shots: how many images it was learned from.
        steps: optimisation steps run.
        seconds: wall time of learning.
        loss: the loss's moving average at the end.
    """

    method: str
    init_word: str
    property: str
    model_fingerprint: ModelFingerprint
    config: dict[str, Any]
    shots: int
    steps: int
    seconds: float
    loss: float | None

    def __post_init__(self) -> None:
        if not isinstance(self.method, str) or not isinstance(self.init_word, str):
            raise DiffinvError("a concept's method and init_word must be strings")
        check_property(self.property)
        if not isinstance(self.config, dict):
            raise DiffinvError("a concept's config must be an object")
        check_integer("shots", self.shots, minimum=1)
        check_integer("steps", self.steps, minimum=0)
        check_number("seconds", self.seconds, minimum=0)
        if self.loss is not None:
            check_number("loss", self.loss)


@dataclass(frozen=True)
class Concept:
    """A new token and its ``k`` embedding vectors.

    Attributes:
        token: the word to write in prompts (e.g. ``<moon>``); a multi-vector concept adds ``token_1`` …
            ``token_{k-1}`` too, and prompts are expanded as diffusers' ``maybe_convert_prompt`` does.
        embeds: ``(k, D)`` float32, D the text encoder's width.
        info: how it was learned, or ``None`` for an embedding made elsewhere.
        unet_lora: low-rank offsets of UNet layers in peft's format (``<module>.lora_A.weight`` ``(r, in)`` and
            ``<module>.lora_B.weight`` ``(out, r)``, scale 1: ``lora_alpha`` = r), or ``None``.
    """

    token: str
    embeds: Tensor
    info: ConceptInfo | None = None
    unet_lora: dict[str, Tensor] | None = None

    def __post_init__(self) -> None:
        check_token(self.token)
        check_embeds(self.embeds, self.token)
        if self.unet_lora is not None:
            check_lora(self.unet_lora, self.token)

    @property
    def num_vectors(self) -> int:
        return int(self.embeds.shape[0])

    @property
    def tokens(self) -> list[str]:
        """Every token the concept adds to a tokenizer."""
        return extra_tokens(self.token, self.num_vectors)

    def with_token(self, token: str | None) -> Concept:
        """The same concept under another token (``None``: unchanged)."""
        return self if token is None or token == self.token else dataclasses.replace(self, token=token)

    def save(self, path: str | Path) -> Path:
        """Write the concept as diffusers' ``learned_embeds.safetensors`` format (plus diffinv's description in the
        metadata, and the UNet offsets as ``unet.*`` tensors if any), atomically."""
        metadata = {"diffinv": json.dumps(self._header())}
        tensors = {self.token: self.embeds.detach().to("cpu", torch.float32).contiguous(), **self._lora_tensors()}
        return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))

    def export_lora(self, path: str | Path) -> Path:
        """Write the UNet offsets alone in diffusers' LoRA format (``load_lora_weights`` loads it; the token still
        needs the concept's embedding, which :meth:`save` / :meth:`export_a1111` carry), atomically."""
        if self.unet_lora is None:
            raise DiffinvError(f"{self.token} changes no UNet weights; it has no LoRA to export")
        tensors = self._lora_tensors()
        return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}))

    def _lora_tensors(self) -> dict[str, Tensor]:
        lora = self.unet_lora or {}
        return {f"{UNET_PREFIX}{k}": v.detach().to("cpu", torch.float32).contiguous() for k, v in lora.items()}

    def export_a1111(self, path: str | Path) -> Path:
        """Write the AUTOMATIC1111 web UI's embedding format (``{"emb_params": (k, D)}``; the web UI names the
        token after the file, diffusers needs ``token=``), atomically."""
        metadata = {"name": self.token, "step": str(self.info.steps if self.info else 0)}
        tensors = {A1111_KEY: self.embeds.detach().to("cpu", torch.float32).contiguous()}
        return atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata=metadata))

    def _header(self) -> dict[str, Any]:
        info = None if self.info is None else self.info.to_dict()
        return {"format": FORMAT_NAME, "version": FORMAT_VERSION, "token": self.token, "info": info}


def check_embeds(embeds: object, name: str) -> Tensor:
    """A concept's vectors: a finite floating-point ``(k, D)`` tensor of sane magnitude, ``1 ≤ k ≤ MAX_VECTORS``."""
    if not isinstance(embeds, Tensor) or not embeds.is_floating_point():
        raise DiffinvError(f"{name}: the embedding must be a floating-point tensor")
    if embeds.ndim != 2 or not 1 <= embeds.shape[0] <= MAX_VECTORS or embeds.shape[1] < 1:
        raise DiffinvError(f"{name}: the embedding has shape {tuple(embeds.shape)}, expected (vectors, width)")
    if not torch.isfinite(embeds).all() or embeds.abs().max() > MAX_ABS_VALUE:
        raise DiffinvError(f"{name}: the embedding holds NaN, Inf or values beyond ±{MAX_ABS_VALUE:g}")
    return embeds


def check_lora(lora: object, name: str) -> dict[str, Tensor]:
    """UNet offsets: pairs ``<module>.lora_A.weight`` ``(r, in)`` / ``<module>.lora_B.weight`` ``(out, r)`` of finite
    floating-point tensors, one rank for all."""
    if not isinstance(lora, dict) or not lora:
        raise DiffinvError(f"{name}: the UNet offsets must be a non-empty mapping of tensors")
    modules = {key[: -len(LORA_SUFFIXES[0])] for key in lora if key.endswith(LORA_SUFFIXES[0])}
    if set(lora) != {m + suffix for m in modules for suffix in LORA_SUFFIXES}:
        raise DiffinvError(f"{name}: the UNet offsets must be lora_A/lora_B weight pairs")
    ranks = set()
    for module in modules:
        down, up = (lora[module + suffix] for suffix in LORA_SUFFIXES)
        for tensor in (down, up):
            if not isinstance(tensor, Tensor) or not tensor.is_floating_point() or tensor.ndim != 2:
                raise DiffinvError(f"{name}: the offsets of {module} must be floating-point matrices")
            if not torch.isfinite(tensor).all() or tensor.abs().max() > MAX_ABS_VALUE:
                raise DiffinvError(f"{name}: the offsets of {module} hold NaN, Inf or huge values")
        if up.shape[1] != down.shape[0]:
            raise DiffinvError(f"{name}: the offsets of {module} have mismatched ranks")
        ranks.add(down.shape[0])
    if len(ranks) != 1:
        raise DiffinvError(f"{name}: the UNet offsets mix ranks {sorted(ranks)}")
    return lora
