"""Reading embedding files: diffinv's concept files, diffusers' ``learned_embeds.safetensors``/``.bin`` and the
AUTOMATIC1111 web UI's ``.safetensors``/``.pt`` embeddings.

Nothing is unpickled: ``.safetensors`` files are read as tensors, ``.pt``/``.bin`` files only through
``torch.load(weights_only=True)``, which refuses any object that is not plain tensors and containers.
"""

from __future__ import annotations

import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from torch import Tensor

from diffinv.errors import DiffinvError, first_line
from diffinv.io import check_input_file
from diffinv.parsing import parse_json_header
from diffinv.personalization.base import (
    A1111_KEY,
    FORMAT_NAME,
    FORMAT_VERSION,
    UNET_PREFIX,
    Concept,
    ConceptInfo,
    check_embeds,
    check_token,
)

TORCH_SUFFIXES = (".pt", ".bin", ".pth")


def read_concept(path: str | Path, token: str | None = None) -> Concept:
    """Read an embedding file as a :class:`Concept`; ``token`` renames it (an embedding that names no token — a
    bare tensor, an A1111 ``emb_params`` file without a name — is named after the file, as the web UI does).

    Raises:
        DiffinvError: missing or unreadable file, a pickle that is not weights-only, no embedding in it, or a
            malformed one.
    """
    path = check_input_file(path)
    if token is not None:
        check_token(token)
    suffix = path.suffix.lower()
    if suffix == ".safetensors":
        tensors, metadata = _read_safetensors(path)
        header = metadata.get("diffinv")
        if header is not None:
            return _diffinv_concept(path, tensors, header).with_token(token)
        return _from_state(path, tensors, token or metadata.get("name"))
    if suffix in TORCH_SUFFIXES:
        return _from_state(path, _read_weights_only(path), token)
    raise DiffinvError(f"{path}: an embedding file is .safetensors, or .pt/.bin read weights-only; got {suffix!r}")


def _read_safetensors(path: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    try:
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            return {key: handle.get_tensor(key) for key in handle.keys()}, metadata  # noqa: SIM118
    except (SafetensorError, OSError, ValueError) as exc:
        raise DiffinvError(f"{path}: not a readable .safetensors file ({first_line(exc)})") from None


def _read_weights_only(path: Path) -> Any:
    try:
        return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        found = re.search(r"GLOBAL (\S+)", str(exc))
        if found is None:
            raise DiffinvError(f"{path}: not a readable torch file (its pickle stream is not one)") from None
        raise DiffinvError(
            f"{path}: the file holds a Python object ({found.group(1)}) beyond tensors; diffinv loads only "
            "weights-only files (convert it to .safetensors where you trust it)"
        ) from None
    except (OSError, RuntimeError, EOFError, ValueError) as exc:
        raise DiffinvError(f"{path}: not a readable torch file ({first_line(exc)})") from None


def _diffinv_concept(path: Path, tensors: Mapping[str, Tensor], header_text: str) -> Concept:
    header = parse_json_header(header_text, str(path))
    if header.get("format") != FORMAT_NAME:
        raise DiffinvError(f"{path}: its diffinv metadata is not a concept's")
    if header.get("version") != FORMAT_VERSION:
        raise DiffinvError(f"{path}: concept format version {header.get('version')!r} is not supported")
    token = header.get("token")
    lora = {k[len(UNET_PREFIX) :]: v for k, v in tensors.items() if k.startswith(UNET_PREFIX)}
    if not isinstance(token, str) or set(tensors) - {UNET_PREFIX + k for k in lora} != {token}:
        raise DiffinvError(f"{path}: a concept file holds its token's tensor and, optionally, unet.* offsets")
    info = header.get("info")
    return Concept(
        token,
        _as_vectors(path, tensors[token]),
        None if info is None else _concept_info(path, info),
        {k: v.to(torch.float32) for k, v in lora.items()} or None,
    )


def _concept_info(path: Path, info: Any) -> ConceptInfo:
    """The description stored in a concept file; an unreadable one (a bad model fingerprint included) raises
    :class:`DiffinvError` naming the file."""
    try:
        return ConceptInfo.from_dict(info, "its concept description")
    except DiffinvError as exc:
        raise DiffinvError(f"{path}: {exc}") from None
    except (KeyError, TypeError, ValueError) as exc:  # from the model fingerprint's reader
        raise DiffinvError(f"{path}: its concept description is unreadable ({first_line(exc)})") from None


def _from_state(path: Path, state: Any, token: str | None) -> Concept:
    """A Concept from the formats diffusers' ``load_textual_inversion`` reads: a bare tensor, ``{token: tensor}``,
    or A1111's ``{"string_to_param": {"*": tensor}, "name": ...}`` / ``{"emb_params": tensor}``."""
    name: Any = None
    if isinstance(state, Tensor):
        embeds = state
    elif isinstance(state, Mapping) and "string_to_param" in state:
        params = state["string_to_param"]
        if not isinstance(params, Mapping) or len(params) != 1:
            raise DiffinvError(f"{path}: an A1111 embedding's string_to_param must hold one tensor")
        embeds, name = next(iter(params.values())), state.get("name")
    elif isinstance(state, Mapping) and set(state) == {A1111_KEY}:
        embeds = state[A1111_KEY]
    elif isinstance(state, Mapping) and len(state) == 1:
        name, embeds = next(iter(state.items()))
    else:
        keys = ", ".join(map(str, state)) if isinstance(state, Mapping) else type(state).__name__
        raise DiffinvError(f"{path}: not a textual-inversion embedding (it holds {keys})")
    chosen = token or (name if isinstance(name, str) and name else None) or path.stem
    return Concept(check_token(chosen), _as_vectors(path, embeds))


def _as_vectors(path: Path, embeds: Any) -> Tensor:
    if isinstance(embeds, Tensor) and embeds.ndim == 1:
        embeds = embeds.unsqueeze(0)
    return check_embeds(embeds, str(path)).to(torch.float32)
