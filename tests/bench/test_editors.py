"""The editing bench's editors: one registry, the default list drawn from it, and each editor's own rule of where it
applies (no flags or name checks in the bench)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from diffinv.bench.config import (
    DEFAULT_EDITORS,
    DIAGNOSTIC_EDITORS,
    EDITORS,
    BenchConfig,
    ConceptBenchConfig,
    EditBenchConfig,
    SDEditSweepConfig,
    TokenInfluenceConfig,
)
from diffinv.bench.datasets import load_dataset
from diffinv.bench.edit_tasks import make_task
from diffinv.bench.editors import EditRequest
from diffinv.config import init_fields
from diffinv.errors import DiffinvError

FREE = SimpleNamespace(negative_slot_free=True)
TAKEN = SimpleNamespace(negative_slot_free=False)


def test_the_default_editors_are_the_registry_less_the_diagnostic_ones():
    assert DEFAULT_EDITORS == tuple(n for n in EDITORS.names() if n not in DIAGNOSTIC_EDITORS)
    assert EditBenchConfig().editors == DEFAULT_EDITORS and set(DIAGNOSTIC_EDITORS) <= set(EDITORS)
    assert [n for n, e in EDITORS.items() if not e.needs_inversion] == ["sdedit"]
    assert [n for n, e in EDITORS.items() if not e.follows_target] == ["negative"]
    with pytest.raises(DiffinvError, match="unknown editor"):
        EditBenchConfig(editors=("magic",))


def test_each_editor_says_where_it_applies():
    scene = load_dataset("shapes:1")[0].scene
    recolor, strokes = (
        EditRequest.of_task(make_task(scene, "recolor", 0)),
        EditRequest.of_task(make_task(scene, "strokes", 0)),
    )
    pie = EditRequest("pie", "a cat", "a dog", None, ())
    assert EDITORS["p2p"].applies_to("ddim", FREE, recolor) and not EDITORS["p2p"].applies_to("ddim", FREE, strokes)
    assert EDITORS["sdedit"].applies_to(None, None, strokes) and not EDITORS["sdedit"].applies_to(None, None, pie)
    assert EDITORS["p2p-blend"].applies_to("ddim", FREE, recolor)
    assert not EDITORS["p2p-blend"].applies_to("ddim", FREE, pie)  # a PIE item without a blended word in its prompts
    for name in ("p2p-neg", "negative"):
        assert EDITORS[name].applies_to("ddim", FREE, recolor)
        assert not EDITORS[name].applies_to("null-text", TAKEN, recolor)
    assert EDITORS["p2p-delta"].applies_to("prompt-tokens", FREE, recolor)
    assert not EDITORS["p2p-delta"].applies_to("ddim", FREE, recolor)
    assert EDITORS["p2p-both"].applies_to("direct", FREE, recolor)
    assert recolor.removed_words == " ".join(recolor.task.old_words) and recolor.blend_words


@pytest.mark.parametrize(
    "cls", [BenchConfig, EditBenchConfig, SDEditSweepConfig, ConceptBenchConfig, TokenInfluenceConfig]
)
def test_bench_configs_round_trip_and_every_field_has_help(cls):
    config = cls()
    assert cls.from_dict(config.to_dict()) == config
    assert all(cls.help(name) for name in init_fields(cls))


def test_bench_config_checks():
    assert EditBenchConfig(methods=("ddim:steps=2",)).variants[0].method == "ddim"
    for make, match in [
        (lambda: SDEditSweepConfig(strengths=(0.0,)), "--strengths"),
        (lambda: EditBenchConfig(sdedit_strength=1.5), "sdedit_strength"),
        (lambda: TokenInfluenceConfig(replacement="drop"), "replacement must be one of"),
        (lambda: BenchConfig(limit=0), "limit"),
    ]:
        with pytest.raises(DiffinvError, match=match):
            make()
