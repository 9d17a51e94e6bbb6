"""Editing real images on top of inversions (prompt-to-prompt, negative prompts) and SDEdit.

Names are imported lazily (PEP 562): the settings and the mode registry load without torch.
"""

from __future__ import annotations

from diffinv.lazy import lazy_exports

_EXPORTS = {
    "EditConfig": "diffinv.editing.config",
    "SDEditConfig": "diffinv.editing.config",
    "EditResult": "diffinv.editing.base",
    "MODES": "diffinv.editing.registry",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
