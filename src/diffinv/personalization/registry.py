"""The personalization methods diffinv knows, by name, and the protocol they follow.

Adding a method: one new file exposing ``METHOD`` (tensor code), its config class in
:mod:`diffinv.personalization.config` (no torch), and one line in :data:`_METHODS` naming both. The method files are
named as ``"module:METHOD"`` and imported only when one is looked up, so listing the methods and their config classes
(``diffinv --help``) loads no tensor library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final, Protocol

from diffinv.personalization.config import E4TConfig, LearningConfig, LoRAConfig, TextualInversionConfig
from diffinv.registry import Registry

if TYPE_CHECKING:
    from diffinv.personalization.base import Concept
    from diffinv.personalization.problem import ConceptProblem


class Personalizer(Protocol):
    """What a method file provides (as its ``METHOD``)."""

    name: str
    title: str

    def learn(self, problem: ConceptProblem, config: LearningConfig) -> Concept:
        """Learn the problem's concept with ``config`` (an instance of the method's config class)."""
        ...


_METHODS: Final[tuple[tuple[str, str, type[LearningConfig]], ...]] = (
    ("ti", "diffinv.personalization.textual_inversion:METHOD", TextualInversionConfig),
    ("lora", "diffinv.personalization.lora:METHOD", LoRAConfig),
    ("e4t", "diffinv.personalization.e4t:METHOD", E4TConfig),
)
"""One line per method: its name, its ``METHOD`` object, its config class."""

PERSONALIZERS: Final[Registry[Personalizer]] = Registry(
    "personalization method", [(name, method) for name, method, _ in _METHODS]
)
"""Method name → the method (imported on first look-up)."""

METHOD_CONFIGS: Final[Registry[type[LearningConfig]]] = Registry(
    "personalization method", [(name, config) for name, _, config in _METHODS]
)
"""Method name → its config class (no tensor library needed); its defaults are the method's."""

DEFAULT_METHOD: Final[str] = "ti"
"""The method of ``learn-concept`` and :func:`diffinv.api.learn_concept` when none is named."""
