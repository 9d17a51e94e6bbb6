"""The inversion methods diffinv knows, by name, and the protocol they follow. Adding a method: one new file and
one line here.

Method files import no tensor library at module level (their tensor work goes through
:class:`~diffinv.inversion.base.InversionProblem`), so listing the methods and presets is cheap."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Protocol

from diffinv.errors import DiffinvError
from diffinv.inversion import ddim, direct, negative_prompt, null_text, prompt_tokens
from diffinv.inversion.config import InversionConfig

if TYPE_CHECKING:
    from diffinv.inversion.base import Inversion, InversionProblem


class InversionMethod(Protocol):
    """What a method file provides."""

    name: str
    requires_prompt: bool

    @property
    def default_config(self) -> InversionConfig:
        """The method's defaults (each method file says where they come from: a paper's table or our measurement)."""
        ...

    @property
    def presets(self) -> Mapping[str, InversionConfig]:
        """Named alternative settings, selected as ``"<name>@<preset>"`` (e.g. ``prompt-tokens@paper``)."""
        ...

    def invert(self, problem: InversionProblem) -> list[Inversion]:
        """Invert the problem's images together; one result per image, in order."""
        ...


METHODS: dict[str, InversionMethod] = {
    m.METHOD.name: m.METHOD for m in (ddim, null_text, prompt_tokens, negative_prompt, direct)
}


def get_method(name: str) -> InversionMethod:
    """Look up a method by name; unknown names raise :class:`DiffinvError` listing the known ones."""
    try:
        return METHODS[name]
    except KeyError:
        raise DiffinvError(f"unknown inversion method {name!r}; choose one of {', '.join(METHODS)}") from None


def resolve_method(spec: str) -> tuple[InversionMethod, InversionConfig]:
    """``"name"`` → the method and its ``default_config``; ``"name@preset"`` → the method and that preset."""
    name, at, preset = spec.partition("@")
    method = get_method(name)
    if not at:
        return method, method.default_config
    if preset not in method.presets:
        known = ", ".join(f"{name}@{p}" for p in method.presets) or "none"
        raise DiffinvError(f"unknown preset {spec!r}; presets of {name}: {known}")
    return method, method.presets[preset]


def method_names() -> tuple[str, ...]:
    """Every accepted method spec: the names, then ``name@preset`` for each preset."""
    return (*METHODS, *(f"{name}@{preset}" for name, method in METHODS.items() for preset in method.presets))
