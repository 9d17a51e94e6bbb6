"""The prompt-to-prompt modes diffinv knows, by name. Adding a mode: one new file exposing ``MODE`` (an
:class:`~diffinv.editing.base.EditMode`) and one line here.

Entries are imported on first lookup, so the names (for ``--help``, the web app's menu and
:class:`~diffinv.editing.config.EditConfig`'s check) cost no import.
"""

from __future__ import annotations

from diffinv.editing.base import EditMode
from diffinv.registry import Registry

MODES: Registry[EditMode] = Registry(
    "edit mode",
    [
        ("replace", "diffinv.editing.replace:MODE"),
        ("refine", "diffinv.editing.refine:MODE"),
        ("reweight", "diffinv.editing.reweight:MODE"),
    ],
)
