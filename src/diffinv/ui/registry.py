"""The app's tabs, in order. Adding a tab: one new file under ``tabs/`` and one line here."""

from __future__ import annotations

from diffinv.ui.context import Tab
from diffinv.ui.tabs import bench, edit, invert, sdedit

TABS: tuple[Tab, ...] = (invert.TAB, edit.TAB, sdedit.TAB, bench.TAB)
