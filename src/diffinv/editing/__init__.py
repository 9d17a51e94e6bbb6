"""Editing real images on top of inversions (prompt-to-prompt, negative prompts) and SDEdit."""

from diffinv.editing.base import EditConfig, EditResult
from diffinv.editing.registry import MODES

__all__ = ["MODES", "EditConfig", "EditResult"]
