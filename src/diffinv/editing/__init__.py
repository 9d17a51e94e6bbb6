"""Editing real images on top of inversions (prompt-to-prompt, negative prompts) and SDEdit.

Names are imported lazily (PEP 562): the settings and the mode registry load without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "EditConfig": "diffinv.editing.config",
    "SDEditConfig": "diffinv.editing.config",
    "EditResult": "diffinv.editing.base",
    "MODES": "diffinv.editing.registry",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'diffinv.editing' has no attribute {name!r}")
