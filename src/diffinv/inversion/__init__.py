"""Inversion methods: one file each, one signature (``invert(problem) -> Inversion``), one result dataclass.

Names are imported lazily (PEP 562): the registry and the configurations (each method's ``config_class``) load
without torch, so ``diffinv --help`` is fast; :class:`Inversion` and :class:`InversionProblem` bring in the tensor
libraries when first used.
"""

from __future__ import annotations

from diffinv.lazy import lazy_exports

_EXPORTS = {
    "Inversion": "diffinv.inversion.base",
    "InversionProblem": "diffinv.inversion.base",
    "InversionSettings": "diffinv.inversion.base",
    "InversionStats": "diffinv.inversion.base",
    "InversionConfig": "diffinv.inversion.config",
    "OptimizationConfig": "diffinv.inversion.config",
    "OptimizingInversionConfig": "diffinv.inversion.config",
    "PromptTokensConfig": "diffinv.inversion.prompt_tokens",
    "InversionMethod": "diffinv.inversion.registry",
    "METHODS": "diffinv.inversion.registry",
    "method_names": "diffinv.inversion.registry",
    "resolve_method": "diffinv.inversion.registry",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
