"""The app's tabs, in order. Adding a tab: one new file under ``tabs/`` exposing ``TAB`` and one line here."""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from diffinv.registry import Registry

if TYPE_CHECKING:
    from diffinv.ui.context import Tab

TABS: Final[Registry[Tab]] = Registry(
    "tab",
    [
        ("invert", "diffinv.ui.tabs.invert:TAB"),
        ("edit", "diffinv.ui.tabs.edit:TAB"),
        ("sdedit", "diffinv.ui.tabs.sdedit:TAB"),
        ("generate", "diffinv.ui.tabs.generate:TAB"),
        ("concepts", "diffinv.ui.tabs.concepts:TAB"),
        ("bench", "diffinv.ui.tabs.bench:TAB"),
    ],
)
"""Tab name → its ``TAB`` (a :class:`~diffinv.ui.context.Tab`; the tab's module is imported on first look-up)."""
