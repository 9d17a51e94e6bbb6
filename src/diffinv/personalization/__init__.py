"""Personalization: teach a model a new concept from a few images (textual inversion), as a :class:`Concept`
that loads into any pipeline of the same model and works in every prompt.

Names are imported lazily (PEP 562), as in :mod:`diffinv.inversion`: the registry and the configuration load without
torch.
"""

from __future__ import annotations

from diffinv.lazy import lazy_exports

_EXPORTS = {
    "Concept": "diffinv.personalization.base",
    "ConceptInfo": "diffinv.personalization.base",
    "E4TConfig": "diffinv.personalization.config",
    "LoRAConfig": "diffinv.personalization.config",
    "TextualInversionConfig": "diffinv.personalization.config",
    "read_concept": "diffinv.personalization.files",
    "load_concept": "diffinv.personalization.loading",
    "loaded": "diffinv.personalization.loading",
    "unload_concept": "diffinv.personalization.loading",
    "METHOD_CONFIGS": "diffinv.personalization.registry",
    "PERSONALIZERS": "diffinv.personalization.registry",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
