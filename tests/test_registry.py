"""The plug-in registry: lookup, one-line errors with the choices, lazy entries."""

from __future__ import annotations

import sys

import pytest

from diffinv.errors import DiffinvError
from diffinv.registry import Registry


def test_lookup_order_and_errors():
    reg = Registry("thing", [("a", 1), ("b", 2)])
    assert reg["b"] == 2 and reg.names() == ("a", "b") and list(reg) == ["a", "b"] and len(reg) == 2
    assert "a" in reg and "c" not in reg
    with pytest.raises(DiffinvError, match="unknown thing 'c'; choose one of a, b"):
        reg["c"]
    assert reg.check(["b"]) == ("b",)
    with pytest.raises(DiffinvError, match=r"unknown thing\(s\) c, d; choose from a, b"):
        reg.check(["a", "c", "d"])
    with pytest.raises(ValueError, match="registered twice"):
        reg.register("a", 3)


def test_lazy_entries_import_on_first_lookup():
    sys.modules.pop("json.tool", None)
    reg = Registry("module function", [("main", "json.tool:main")])
    assert reg.names() == ("main",) and "json.tool" not in sys.modules
    assert reg["main"] is sys.modules["json.tool"].main
    assert reg.items() == [("main", reg["main"])]
