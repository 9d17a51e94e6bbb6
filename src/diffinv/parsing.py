"""Text forms of settings that the command line and the web app both read, parsed in one place (no torch)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from diffinv.errors import DiffinvError


def parse_word_weights(items: Iterable[str], what: str = "word weights") -> dict[str, float]:
    """``["red=2", "circle = 0.5"]`` → ``{"red": 2.0, "circle": 0.5}``: each item is ``WORD=SCALE``, split at its
    last ``=`` (a word may hold one), word and scale stripped of spaces. A malformed item raises
    :class:`DiffinvError` naming ``what`` (e.g. ``--reweight``); a word given twice keeps its last scale."""
    weights = {}
    for item in items:
        word, equals, scale = item.rpartition("=")
        word = word.strip()
        try:
            value = float(scale)
        except ValueError:
            equals = ""
        if not (equals and word):
            raise DiffinvError(f"{what} take WORD=SCALE, e.g. red=2.0; got {item!r}")
        weights[word] = value
    return weights


def parse_json_header(text: str, what: str) -> dict[str, Any]:
    """The JSON object in a file's metadata ``text``; :class:`DiffinvError` naming ``what`` when it is not JSON, not
    an object, or nested too deeply for Python to read (a tampered header)."""
    try:
        header = json.loads(text)
    except (json.JSONDecodeError, RecursionError, TypeError):
        raise DiffinvError(f"{what}: its metadata is not readable JSON (malformed or nested too deeply)") from None
    if not isinstance(header, dict):
        raise DiffinvError(f"{what}: its metadata is not a JSON object")
    return header
