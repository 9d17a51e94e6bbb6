"""The prompt-to-prompt modes diffinv knows, by name. Adding a mode: one new file and one line here."""

from __future__ import annotations

from diffinv.editing import refine, replace, reweight
from diffinv.editing.base import EditMode

MODES: dict[str, EditMode] = {m.MODE.name: m.MODE for m in (replace, refine, reweight)}
