"""The inversion methods diffinv knows, by name, and the protocol they follow.

Adding a method: one new file exposing ``METHOD`` (and, if the method has settings of its own, its config class:
a subclass of :class:`~diffinv.inversion.config.InversionConfig` named as ``config_class``), plus one line in
:data:`METHODS`. Entries are imported on first use and method files import no tensor library at module level (their
tensor work goes through :class:`~diffinv.inversion.base.InversionProblem`), so listing the methods and their presets
is cheap.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from diffinv.config import init_fields, merge
from diffinv.errors import DiffinvError
from diffinv.inversion.config import InversionConfig, OptimizationConfig, OptimizingInversionConfig
from diffinv.registry import Registry


class InversionMethod(Protocol):
    """What a method file provides (as its ``METHOD``).

    Its defaults are its config class's (``config_class()``; the class's docstring says where they come from: a
    paper's table or our measurement), its presets are named alternatives.
    """

    name: str
    summary: str
    """One line for menus and ``--help``: the paper, what is optimised, and what it costs or rules out."""
    requires_prompt: bool
    config_class: type[InversionConfig]

    @property
    def presets(self) -> Mapping[str, InversionConfig]:
        """Named alternative settings, selected as ``"<name>@<preset>"`` (e.g. ``prompt-tokens@paper``)."""
        ...

    def invert(self, problem: Any) -> list[Any]:
        """Invert the images of ``problem`` (an :class:`~diffinv.inversion.base.InversionProblem`) together; one
        :class:`~diffinv.inversion.base.Inversion` per image, in order. (Typed loosely because ``base`` reads this
        registry, for the config class of a method named in a file, so this module cannot import ``base``.)"""
        ...


METHODS: Registry[InversionMethod] = Registry(
    "inversion method",
    [
        ("ddim", "diffinv.inversion.ddim:METHOD"),
        ("null-text", "diffinv.inversion.null_text:METHOD"),
        ("prompt-tokens", "diffinv.inversion.prompt_tokens:METHOD"),
        ("negative-prompt", "diffinv.inversion.negative_prompt:METHOD"),
        ("direct", "diffinv.inversion.direct:METHOD"),
    ],
)
"""Every inversion method, in the order tables and menus list them."""


def resolve_method(spec: str) -> tuple[InversionMethod, InversionConfig]:
    """``"name"`` → the method and its defaults (``config_class()``); ``"name@preset"`` → the method and that preset.
    Unknown names and presets raise :class:`DiffinvError` listing the known ones."""
    name, at, preset = spec.partition("@")
    method = METHODS[name]
    if not at:
        return method, method.config_class()
    if preset not in method.presets:
        known = ", ".join(f"{name}@{p}" for p in method.presets) or "none"
        raise DiffinvError(f"unknown preset {spec!r}; presets of {name}: {known}")
    return method, method.presets[preset]


def method_names() -> tuple[str, ...]:
    """Every accepted method spec: the names, then ``name@preset`` for each preset."""
    return (*METHODS, *(f"{name}@{preset}" for name, method in METHODS.items() for preset in method.presets))


def method_config(spec: str, config: InversionConfig | None = None, **overrides: Any) -> InversionConfig:
    """The settings an inversion with method ``spec`` (``name`` or ``name@preset``) runs with: ``config`` (default:
    the method's defaults or the preset) with every override that is not ``None`` applied. Overrides are the
    config's own fields or, for the optimising methods, the optimiser's (``learning_rate=...``); a setting the
    method does not have raises :class:`DiffinvError`. The one place where an inversion's settings are resolved."""
    method, default = resolve_method(spec)
    base = merge(config, default, f"inversion method {method.name}")
    given = {key: value for key, value in overrides.items() if value is not None}
    own = {key: given.pop(key) for key in list(given) if key in init_fields(type(base))}
    if given and isinstance(base, OptimizingInversionConfig):
        optimizer = {key: given.pop(key) for key in list(given) if key in init_fields(OptimizationConfig)}
        own["optimization"] = base.optimization.replace(**optimizer)
    if given:
        raise DiffinvError(f"{min(given)} is not a setting of inversion method {method.name}")
    return base.replace(**own)


DEFAULT_METHOD = "prompt-tokens"
"""The method :func:`diffinv.invert`, ``diffinv invert`` and the web app use unless told otherwise: the reference
paper's, whose free negative-prompt slot the editors use."""
