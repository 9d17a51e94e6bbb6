"""Inversion methods: one file each, one signature (``invert(problem) -> Inversion``), one result dataclass."""

from diffinv.inversion.base import (
    Inversion,
    InversionConfig,
    InversionMethod,
    InversionProblem,
    InversionSettings,
    InversionStats,
    OptimizationConfig,
)
from diffinv.inversion.registry import METHODS, get_method, method_names, resolve_method

__all__ = [
    "METHODS",
    "Inversion",
    "InversionConfig",
    "InversionMethod",
    "InversionProblem",
    "InversionSettings",
    "InversionStats",
    "OptimizationConfig",
    "get_method",
    "method_names",
    "resolve_method",
]
