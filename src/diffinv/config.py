"""Configuration's one home: every setting of diffinv is a field of a frozen dataclass deriving from :class:`Config`.

A field states its default once (where a paper gives it, the docstring of its class names the paper) and its help
text once (:func:`setting`); from that single statement come

- the dictionary form stored in files and records (:meth:`Config.to_dict`) and its typed, validated inverse
  (:meth:`Config.from_dict`: unknown keys refused, values checked against the field's type, missing keys keep their
  defaults so files written before a field existed still load);
- the API's keyword overrides (:func:`merge`: ``config=`` plus keywords, ``None`` meaning "keep");
- the command line's options (:mod:`diffinv.cli.options` reads the same fields, types and help texts).

Plain Python (no torch), so the command line can describe every option without loading a model library.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from collections.abc import Mapping
from typing import Any, TypeVar

from diffinv.errors import DiffinvError, check_integer, check_number

C = TypeVar("C", bound="Config")


def setting(default: Any = dataclasses.MISSING, help: str = "", **metadata: Any) -> Any:  # noqa: A002 - argparse's word
    """A config field with its help text (shown by ``--help`` and the web app). ``metadata`` may add ``aliases``
    (more option strings, e.g. ``("--vectors",)``) or ``option=False`` (a field the command line does not offer)."""
    return dataclasses.field(default=default, metadata={"help": help, **metadata})


class Config:
    """Base of every configuration dataclass (subclasses are ``@dataclass(frozen=True)``)."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form: nested configs become dicts, tuples lists; fields with ``init=False`` are left out."""
        return {f.name: _plain(getattr(self, f.name)) for f in dataclasses.fields(self) if f.init}  # type: ignore[arg-type]

    @classmethod
    def from_dict(cls: type[C], data: Any, name: str | None = None) -> C:
        """Read back :meth:`to_dict`'s output, every value checked against its field's type; unknown keys and bad
        values raise :class:`DiffinvError` (one line, naming the field), missing keys keep their defaults."""
        where = name or cls.__name__
        if isinstance(data, Config):
            data = data.to_dict()
        if not isinstance(data, Mapping):
            raise DiffinvError(f"{where} must be a mapping of settings, got {type(data).__name__}")
        fields = init_fields(cls)
        unknown = sorted(set(map(str, data)) - set(fields))
        if unknown:
            raise DiffinvError(f"{where} has unknown setting(s) {', '.join(unknown)}; known: {', '.join(fields)}")
        hints = type_hints(cls)
        values = {key: read_value(hints[key], value, f"{where}.{key}") for key, value in data.items()}
        missing = [key for key, f in fields.items() if key not in values and _required(f)]
        if missing:
            raise DiffinvError(f"{where} lacks the setting(s) {', '.join(missing)}")
        return cls(**values)

    def replace(self: C, **overrides: Any) -> C:
        """A copy with the given fields changed; ``None`` values keep the current one, unknown names raise
        :class:`DiffinvError` (naming the known ones)."""
        fields = init_fields(type(self))
        unknown = sorted(set(overrides) - set(fields))
        if unknown:
            raise DiffinvError(
                f"{', '.join(unknown)} is not a setting of {type(self).__name__}; known: {', '.join(fields)}"
            )
        changes = {key: value for key, value in overrides.items() if value is not None}
        return dataclasses.replace(self, **changes) if changes else self  # type: ignore[type-var]

    @classmethod
    def help(cls, name: str) -> str:
        """The help text of field ``name``."""
        return init_fields(cls)[name].metadata.get("help", "")

    @classmethod
    def default(cls, name: str) -> Any:
        """The default of field ``name`` (a default factory is called)."""
        f = init_fields(cls)[name]
        return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def merge(config: C | None, default: C, what: str = "", **overrides: Any) -> C:
    """The one way the API combines ``config=`` with keyword overrides: ``config`` (else ``default``) with every
    override that is not ``None`` applied. ``config`` must be of ``default``'s class (``what`` names the thing
    configured in the error)."""
    base = default if config is None else config
    if not isinstance(base, type(default)):
        for_what = f" for {what}" if what else ""
        raise DiffinvError(f"config must be a {type(default).__name__}{for_what}, got {type(base).__name__}")
    return base.replace(**overrides)


@functools.cache
def init_fields(cls: type) -> dict[str, dataclasses.Field[Any]]:
    """The fields of dataclass ``cls`` that its constructor takes, by name, in order."""
    return {f.name: f for f in dataclasses.fields(cls) if f.init}


@functools.cache
def type_hints(cls: type) -> dict[str, Any]:
    """The resolved type of every field of dataclass ``cls``."""
    return typing.get_type_hints(cls)


def read_value(hint: Any, value: Any, where: str) -> Any:
    """``value`` (as read from JSON, or given by a caller) checked against the type ``hint``: lists become tuples
    where a tuple is expected, ints are accepted as floats, booleans never as numbers."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is Any:
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return read_value(arg, value, where)
            except DiffinvError as exc:
                errors.append(exc)
        raise errors[0]
    if origin is typing.Literal:
        if value not in args:
            raise DiffinvError(f"{where} must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if isinstance(hint, type) and issubclass(hint, Config):
        return value if isinstance(value, hint) else hint.from_dict(value, where)  # a subclass's instance stays one
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return value if isinstance(value, hint) else hint.from_dict(value)  # type: ignore[attr-defined]
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise DiffinvError(f"{where} must be a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(read_value(args[0], v, f"{where}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise DiffinvError(f"{where} must have {len(args)} items, got {value!r}")
        return tuple(read_value(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
    if origin in (dict, Mapping) or hint is dict:
        if not isinstance(value, Mapping):
            raise DiffinvError(f"{where} must be a mapping, got {value!r}")
        return dict(value)
    return _scalar(hint, value, where)


def _scalar(hint: Any, value: Any, where: str) -> Any:
    if hint is bool:
        ok = isinstance(value, bool)
    elif hint is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif hint is float:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(hint, type):
        ok = isinstance(value, hint)
    else:
        return value
    if not ok:
        raise DiffinvError(f"{where} must be a {getattr(hint, '__name__', hint)}, got {value!r}")
    return value


def _plain(value: Any) -> Any:
    if isinstance(value, Config):
        return value.to_dict()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        to_dict = getattr(value, "to_dict", None)
        return to_dict() if to_dict else {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, tuple | list):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _required(f: dataclasses.Field[Any]) -> bool:
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


MAX_GUIDANCE_SCALE = 100.0
"""Classifier-free guidance beyond this only saturates or overflows (users work at 1–30; 1e30 gave black images)."""
MAX_SEED = 2**63 - 1
"""Seeds of torch generators (64-bit): one range for every command and the web app."""


@dataclasses.dataclass(frozen=True)
class SamplingConfig(Config):
    """How the guided DDIM sampler runs: the settings generation, reconstruction, editing and SDEdit share.

    Defaults: Stable Diffusion's (Rombach et al. 2022; diffusers' ``StableDiffusionPipeline.__call__``), which
    Mokady et al. 2022 and the reference paper keep for inversion: 50 steps, guidance 7.5.
    """

    num_inference_steps: int = setting(50, "denoising steps T", aliases=("--steps",))
    guidance_scale: float = setting(7.5, "classifier-free guidance weight")

    def __post_init__(self) -> None:
        check_integer("num_inference_steps", self.num_inference_steps, minimum=1)
        check_number("guidance_scale", self.guidance_scale, minimum=0, maximum=MAX_GUIDANCE_SCALE)
