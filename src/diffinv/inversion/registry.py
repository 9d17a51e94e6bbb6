"""The inversion methods diffinv knows, by name. Adding a method: one new file and one line here."""

from __future__ import annotations

from diffinv.errors import DiffinvError
from diffinv.inversion import ddim, direct, negative_prompt, null_text, prompt_tokens
from diffinv.inversion.base import InversionMethod

METHODS: dict[str, InversionMethod] = {
    m.METHOD.name: m.METHOD for m in (ddim, null_text, prompt_tokens, negative_prompt, direct)
}


def get_method(name: str) -> InversionMethod:
    """Look up a method by name; unknown names raise :class:`DiffinvError` listing the known ones."""
    try:
        return METHODS[name]
    except KeyError:
        raise DiffinvError(f"unknown inversion method {name!r}; choose one of {', '.join(METHODS)}") from None
