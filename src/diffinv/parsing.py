"""Text forms of settings that the command line and the web app both read, parsed in one place (no torch)."""

from __future__ import annotations

from collections.abc import Iterable

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
