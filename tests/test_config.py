"""The configuration base: typed round trips, refused keys and values, overrides merged one way."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pytest

from diffinv.config import Config, merge, setting
from diffinv.errors import DiffinvError


@dataclass(frozen=True)
class Inner(Config):
    rate: float = setting(0.1, "a rate")
    steps: int = setting(3, "a count")


@dataclass(frozen=True)
class Outer(Config):
    name: str = setting("a", "a name")
    inner: Inner = field(default_factory=Inner)
    words: tuple[str, ...] = ()
    pairs: tuple[tuple[str, float], ...] = ()
    limit: int | None = None
    flag: bool = True


@dataclass(frozen=True)
class Sub(Outer):
    extra: int = 1


def test_round_trip_through_json_is_lossless():
    config = Outer(name="b", inner=Inner(rate=2.0, steps=5), words=("x", "y"), pairs=(("red", 2.0),), limit=4)
    assert Outer.from_dict(json.loads(json.dumps(config.to_dict()))) == config


def test_missing_keys_keep_defaults_and_ints_read_as_floats():
    assert Outer.from_dict({"inner": {"rate": 1}}) == Outer(inner=Inner(rate=1.0))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"nope": 1}, "unknown setting(s) nope"),
        ({"inner": {"steps": 1.5}}, "Outer.inner.steps must be a int"),
        ({"inner": {"steps": True}}, "must be a int"),
        ({"flag": 1}, "Outer.flag must be a bool"),
        ({"words": "xy"}, "Outer.words must be a list"),
        ({"pairs": [["red", "2"]]}, "Outer.pairs[0][1] must be a float"),
        ({"limit": "4"}, "Outer.limit must be a int"),
        ([], "must be a mapping"),
    ],
)
def test_bad_data_is_one_line_naming_the_field(data, message):
    with pytest.raises(DiffinvError, match=None) as info:
        Outer.from_dict(data)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_replace_keeps_none_and_refuses_unknown_names():
    config = Outer()
    assert config.replace(name=None, limit=3) == Outer(limit=3)
    assert config.replace() is config
    with pytest.raises(DiffinvError, match="nope is not a setting of Outer"):
        config.replace(nope=1)


def test_merge_takes_config_or_default_and_checks_the_class():
    assert merge(None, Outer(), name="c") == Outer(name="c")
    assert merge(Sub(extra=2), Outer(), limit=1) == Sub(extra=2, limit=1)
    with pytest.raises(DiffinvError, match="config must be a Sub for thing, got Outer"):
        merge(Outer(), Sub(), "thing")


def test_help_and_default_are_read_from_the_field():
    assert Inner.help("rate") == "a rate"
    assert Outer.default("inner") == Inner()
