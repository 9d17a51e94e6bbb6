"""The one plug-in pattern: a :class:`Registry` of named things (inversion methods, editors, personalizers, bench
editors, commands, web-app tabs).

Adding a plug-in is one new file exposing one object, plus one line in the registry that lists it. Looking up an
unknown name raises :class:`DiffinvError` with the choices in one line; :meth:`Registry.names` feeds ``--help`` and
the web app's menus. An entry can be given lazily as ``"package.module:ATTRIBUTE"`` so that listing the names
imports no tensor library; the module is imported when the entry is first looked up.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator
from typing import Generic, TypeVar

from diffinv.errors import DiffinvError

T = TypeVar("T")


class Registry(Generic[T]):
    """Named plug-ins of one kind, in registration order.

    Args:
        kind: what the entries are, for messages (``"inversion method"``).
        entries: ``(name, entry)`` pairs; an entry that is a string ``"module:ATTRIBUTE"`` is imported on first use.
    """

    def __init__(self, kind: str, entries: Iterable[tuple[str, T | str]] = ()) -> None:
        self.kind = kind
        self._entries: dict[str, T | str] = {}
        for name, entry in entries:
            self.register(name, entry)

    def register(self, name: str, entry: T | str) -> None:
        """Add ``entry`` under ``name`` (names are unique)."""
        if name in self._entries:
            raise ValueError(f"{self.kind} {name!r} is registered twice")
        self._entries[name] = entry

    def __getitem__(self, name: str) -> T:
        """The entry called ``name``; an unknown name raises :class:`DiffinvError` listing the choices."""
        if name not in self._entries:
            raise DiffinvError(f"unknown {self.kind} {name!r}; choose one of {', '.join(self._entries)}")
        entry = self._entries[name]
        if isinstance(entry, str):
            module, _, attribute = entry.partition(":")
            entry = getattr(importlib.import_module(module), attribute)
            self._entries[name] = entry
        return entry  # type: ignore[return-value]

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> tuple[str, ...]:
        """Every name, in registration order."""
        return tuple(self._entries)

    def values(self) -> list[T]:
        """Every entry (importing the lazy ones), in registration order."""
        return [self[name] for name in self._entries]

    def items(self) -> list[tuple[str, T]]:
        return [(name, self[name]) for name in self._entries]

    def check(self, names: Iterable[str]) -> tuple[str, ...]:
        """``names`` as a tuple if every one is registered, else :class:`DiffinvError` naming the unknown ones."""
        names = tuple(names)
        unknown = [n for n in names if n not in self._entries]
        if unknown:
            raise DiffinvError(f"unknown {self.kind}(s) {', '.join(unknown)}; choose from {', '.join(self._entries)}")
        return names
