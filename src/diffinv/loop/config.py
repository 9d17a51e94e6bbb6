"""The configs of training runs (no torch): their base, which also reads configs stored under older setting names.

A training config (the mini model's stages and :class:`~diffinv.train.config.MiniConfig`, the probe's, E4T
pre-training's) is stored in its run folder (``config.json``, ``train_config.json``) and in every checkpoint's
``state.json``; :meth:`TrainingConfig.from_dict` reads those files whatever release wrote them: missing settings keep
their defaults (:class:`~diffinv.config.Config`) and settings renamed since (:data:`RENAMED`) are read under their
new name.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final, TypeVar

from diffinv.config import Config, type_hints
from diffinv.errors import DiffinvError

C = TypeVar("C", bound="TrainingConfig")

RENAMED: Final[Mapping[str, str]] = MappingProxyType({"lr": "learning_rate"})
"""Old setting name → today's. Until issue 24 the training configs called the peak learning rate ``lr``; it is
``learning_rate`` now, diffusers' name and the personalization configs' (one name for the stage loop)."""


class TrainingConfig(Config):
    """Base of the configs of training runs: :meth:`from_dict` also reads configs stored under the old names of
    :data:`RENAMED` (subclasses are ``@dataclass(frozen=True)``)."""

    @classmethod
    def from_dict(cls: type[C], data: Any, name: str | None = None) -> C:
        return super().from_dict(upgraded(cls, data), name)


def upgraded(cls: type[Config], data: Any) -> Any:
    """``data``, a stored ``cls`` (its nested configs included), with every old name of :data:`RENAMED` that is not a
    setting of its class but whose new name is, replaced by the new name; anything else is left as it is (a
    non-mapping too: :meth:`Config.from_dict` refuses it). A mapping holding both names raises :class:`DiffinvError`.
    """
    if not isinstance(data, Mapping):
        return data
    hints = type_hints(cls)
    result: dict[str, Any] = {}
    for key, value in data.items():
        new = RENAMED.get(key, key) if key not in hints and RENAMED.get(key) in hints else key
        if new != key and new in data:
            raise DiffinvError(f"{cls.__name__} has both {key} (its old name) and {new}; keep {new}")
        hint = hints.get(new)
        if isinstance(hint, type) and issubclass(hint, Config):
            value = upgraded(hint, value)
        result[new] = value
    return result
