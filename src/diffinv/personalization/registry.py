"""The personalization methods diffinv knows, by name, and the protocol they follow. Adding a method: one new file
and one line here.

Method files hold tensor code, so the registry names their modules and imports one only when it is asked for:
listing the methods (``diffinv --help``) loads no tensor library."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any, Final, Protocol

from diffinv.errors import DiffinvError

if TYPE_CHECKING:
    from diffinv.personalization.base import Concept
    from diffinv.personalization.problem import ConceptProblem


class Personalizer(Protocol):
    """What a method file provides (as its ``METHOD``)."""

    name: str
    title: str
    config_class: type

    @property
    def default_config(self) -> Any:
        """The method's defaults (each method's config says where they come from)."""
        ...

    def learn(self, problem: ConceptProblem, config: Any) -> Concept:
        """Learn the problem's concept."""
        ...


PERSONALIZERS: Final[dict[str, str]] = {
    "ti": "diffinv.personalization.textual_inversion",
    "lora": "diffinv.personalization.lora",
    "e4t": "diffinv.personalization.e4t",
}
"""Method name → the module whose ``METHOD`` implements it."""


def get_personalizer(name: str) -> Personalizer:
    """Look up a method by name; unknown names raise :class:`DiffinvError` listing the known ones."""
    if name not in PERSONALIZERS:
        known = ", ".join(PERSONALIZERS)
        raise DiffinvError(f"unknown personalization method {name!r}; choose one of {known}")
    return importlib.import_module(PERSONALIZERS[name]).METHOD
