"""Method variants for benchmarks and ablations: ``METHOD[@PRESET][:key=value,...]``.

Keys: ``steps`` (num_inference_steps), ``guidance`` (guidance_scale), ``tokens`` (semantic|all|N), ``pooled``
(true|false: SDXL's pooled embedding optimised by prompt-tokens), ``inner``
(num_inner_steps), ``lr`` (learning_rate), ``lr_decay``, ``eps`` (early_stop_epsilon), ``growth``
(early_stop_growth). Examples: ``prompt-tokens:tokens=all,steps=50``, ``prompt-tokens@paper`` (the presets are the
methods' own, see :func:`diffinv.inversion.resolve_method`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from diffinv.errors import DiffinvError
from diffinv.inversion import InversionConfig, resolve_method


def boolean(value: str) -> bool:
    """``true`` / ``false`` (any case) as a bool; anything else is a ValueError."""
    if value.lower() not in ("true", "false"):
        raise ValueError(value)
    return value.lower() == "true"


TOP_LEVEL = {
    "steps": ("num_inference_steps", int),
    "guidance": ("guidance_scale", float),
    "tokens": ("tokens", str),
    "pooled": ("pooled", boolean),
}
OPTIMIZATION = {
    "inner": ("num_inner_steps", int),
    "lr": ("learning_rate", float),
    "lr_decay": ("lr_decay", float),
    "eps": ("early_stop_epsilon", float),
    "growth": ("early_stop_growth", float),
}


@dataclass(frozen=True)
class Variant:
    """A method plus its settings; ``label`` names it in tables (the spec as given)."""

    label: str
    method: str
    config: InversionConfig


def parse_variant(spec: str) -> Variant:
    """Parse ``METHOD[@PRESET][:key=value,...]`` (see the module docstring)."""
    label = spec.strip()
    head, _, options = label.partition(":")
    inverter, base = resolve_method(head)  # unknown methods and presets fail here, with the known ones
    method = inverter.name
    top: dict[str, object] = {}
    opt: dict[str, object] = {}
    for item in filter(None, (s.strip() for s in options.split(","))):
        key, sep, value = item.partition("=")
        table, target = (TOP_LEVEL, top) if key in TOP_LEVEL else (OPTIMIZATION, opt)
        if not sep or key not in table:
            known = ", ".join([*TOP_LEVEL, *OPTIMIZATION])
            raise DiffinvError(f"bad variant option {item!r} in {spec!r}; use key=value with keys {known}")
        name, kind = table[key]
        try:
            target[name] = kind(value)
        except ValueError:
            raise DiffinvError(f"variant option {key} needs a {kind.__name__}, got {value!r}") from None
    config = dataclasses.replace(base, **top, optimization=dataclasses.replace(base.optimization, **opt))
    return Variant(label=label, method=method, config=config)
