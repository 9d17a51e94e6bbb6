"""Method variants for benchmarks and ablations: ``METHOD[@PRESET][:key=value,...]``.

A key is a field of the method's config class (``num_inference_steps``, ``guidance_scale``, and ``tokens``,
``pooled`` for ``prompt-tokens``), or of its optimiser for the optimising methods (``num_inner_steps``,
``learning_rate``, ``lr_decay``, ``early_stop_epsilon``, ``early_stop_growth``), or one of the short names records and
docs use: ``steps`` (num_inference_steps), ``guidance`` (guidance_scale), ``inner`` (num_inner_steps), ``lr``
(learning_rate), ``eps`` (early_stop_epsilon), ``growth`` (early_stop_growth). A value is read as its field's type
(``true``/``false`` for a boolean). Examples: ``prompt-tokens:tokens=all,steps=50``, ``prompt-tokens@paper`` (the
presets are the methods' own, see :func:`diffinv.inversion.resolve_method`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from diffinv.config import Config, init_fields, type_hints
from diffinv.errors import DiffinvError
from diffinv.inversion import InversionConfig, resolve_method

ALIASES = {
    "steps": "num_inference_steps",
    "guidance": "guidance_scale",
    "inner": "num_inner_steps",
    "lr": "learning_rate",
    "eps": "early_stop_epsilon",
    "growth": "early_stop_growth",
}
"""Short keys → the config fields they set (stored variant labels and the docs use them)."""


def boolean(value: str) -> bool:
    """``true`` / ``false`` (any case) as a bool; anything else is a ValueError."""
    if value.lower() not in ("true", "false"):
        raise ValueError(value)
    return value.lower() == "true"


PARSERS: dict[Any, Callable[[str], Any]] = {int: int, float: float, str: str, bool: boolean}
"""A field's type → how a variant's text value is read."""


@dataclass(frozen=True)
class Variant:
    """A method plus its settings; ``label`` names it in tables (the spec as given)."""

    label: str
    method: str
    config: InversionConfig


def variant_keys(config: InversionConfig) -> dict[str, tuple[str | None, str]]:
    """Every key a variant of ``config``'s method takes → ``(nested config field or None, field)``: the config's
    own scalar fields, those of a nested config (the optimiser), then the short names that apply."""
    keys: dict[str, tuple[str | None, str]] = {}
    for name, value in ((n, getattr(config, n)) for n in init_fields(type(config))):
        if isinstance(value, Config):
            hints = type_hints(type(value))
            keys.update({field: (name, field) for field in init_fields(type(value)) if hints[field] in PARSERS})
        elif type_hints(type(config))[name] in PARSERS:
            keys[name] = (None, name)
    return keys | {alias: keys[field] for alias, field in ALIASES.items() if field in keys}


def parse_variant(spec: str) -> Variant:
    """Parse ``METHOD[@PRESET][:key=value,...]`` (see the module docstring)."""
    label = spec.strip()
    head, _, options = label.partition(":")
    chosen, config = resolve_method(head)  # unknown methods and presets fail here, with the known ones
    keys = variant_keys(config)
    top: dict[str, Any] = {}
    nested: dict[str, dict[str, Any]] = {}
    for item in filter(None, (s.strip() for s in options.split(","))):
        key, sep, value = item.partition("=")
        if not sep or key not in keys:
            raise DiffinvError(f"bad variant option {item!r} in {spec!r}; use key=value with keys {', '.join(keys)}")
        parent, name = keys[key]
        hint = type_hints(type(config) if parent is None else type(getattr(config, parent)))[name]
        try:
            parsed = PARSERS[hint](value)
        except ValueError:
            raise DiffinvError(f"variant option {key} needs a {hint.__name__}, got {value!r}") from None
        (top if parent is None else nested.setdefault(parent, {}))[name] = parsed
    changes = {parent: getattr(config, parent).replace(**values) for parent, values in nested.items()}
    return Variant(label=label, method=chosen.name, config=config.replace(**top, **changes))


def split_methods(text: str) -> tuple[str, ...]:
    """``"ddim,prompt-tokens:tokens=all,steps=50"`` → ``("ddim", "prompt-tokens:tokens=all,steps=50")``: an item
    with ``=`` but no ``:`` continues the previous variant's options."""
    specs: list[str] = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        if "=" in item and ":" not in item and specs:
            specs[-1] += "," + item
        else:
            specs.append(item)
    return tuple(specs)
