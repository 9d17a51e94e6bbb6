"""Captions at three levels of detail and their mention records (world v3)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from diffinv.shapes import Scene, ShapeObject, dataset
from diffinv.shapes.captions import caption, count_tokens, parse_caption
from diffinv.shapes.descriptions import (
    ATTRIBUTES,
    COUNT_WORDS,
    GENERIC_WORDS,
    LEVELS,
    Mentions,
    describe,
    mention_agreement,
    tell,
)
from diffinv.shapes.world import FILL_WORDS, V3


@pytest.fixture(scope="module")
def scenes() -> list[Scene]:
    return dataset("train", 300, seed=4, world="v3")


def _words(text: str) -> list[str]:
    return text.replace(",", " ").split()


def test_full_captions_say_everything_and_parse_back(scenes: list[Scene]) -> None:
    for i, scene in enumerate(scenes):
        full = describe(scene, "full", i)
        assert full.text == caption(scene, i) and count_tokens(full.text) <= V3.max_caption_tokens
        assert full.mentions.background and all(m == frozenset(ATTRIBUTES) for m in full.mentions.objects)
        assert parse_caption(full.text, "v3") == scene.without_jitter().canonical()


def test_partial_captions_leave_something_out_and_record_what_they_say(scenes: list[Scene]) -> None:
    left_out = {"object": 0, "background": 0, **{a: 0 for a in ATTRIBUTES}}
    for i, scene in enumerate(scenes):
        partial = describe(scene, "partial", i)
        words, mentions = _words(partial.text), partial.mentions
        assert len(mentions.objects) == len(scene.objects) and any(mentions.objects)
        assert ("background" in words) == mentions.background
        nouns = [w for w in words if w in V3.shapes or w in GENERIC_WORDS]
        assert len(nouns) == sum(map(mentions.mentioned, range(len(scene.objects))))
        for obj, said in zip(scene.objects, mentions.objects, strict=True):
            for attribute, present in (("shape", obj.shape in words), ("color", obj.color in words)):
                assert present or attribute not in said
            if "fill" in said:
                assert obj.fill != "solid" and FILL_WORDS[obj.fill][0] in words
            left_out["object"] += not said
            for attribute in ATTRIBUTES:
                left_out[attribute] += bool(said) and attribute not in said
        left_out["background"] += not mentions.background
        says_everything = mentions.background and all(
            said | ({"fill"} if o.fill == "solid" else set()) == set(ATTRIBUTES)
            for said, o in zip(mentions.objects, scene.objects, strict=True)
        )
        assert not says_everything
        assert not set(words) & set(V3.heldout_shapes)
    assert all(count > 10 for count in left_out.values()), left_out  # every kind of omission occurs


def test_short_captions_count_the_objects(scenes: list[Scene]) -> None:
    for i, scene in enumerate(scenes[:60]):
        short = describe(scene, "short", i)
        n = len(scene.objects)
        assert short.mentions.count and not any(short.mentions.objects)
        assert (COUNT_WORDS[n - 1] in _words(short.text)) == (n > 1)
        assert ("background" in short.text) == short.mentions.background


def test_descriptions_are_deterministic_and_mentions_round_trip(scenes: list[Scene]) -> None:
    for level in LEVELS:
        assert describe(scenes[0], level, 7) == describe(scenes[0], level, np.random.default_rng(7))
    mentions = describe(scenes[1], "partial", 3).mentions
    assert Mentions.from_dict(mentions.to_dict()) == mentions
    with pytest.raises(ValueError, match="invalid caption level 'medium'"):
        describe(scenes[0], "medium")
    with pytest.raises(ValueError, match="unknown attribute"):
        Mentions.from_dict({"objects": [["texture"]], "background": True})


def test_mention_agreement_judges_only_what_the_caption_says() -> None:
    red = ShapeObject("circle", "red", "large", "top left", fill="striped")
    blue = ShapeObject("star", "blue", "small", "bottom right")
    truth = Scene("white", (red, blue), "v3")
    say = frozenset({"shape", "color"})
    only_red = Mentions((say, frozenset()), background=False)
    assert mention_agreement(truth, truth, only_red)["all"] == 1.0
    moved = Scene("black", (red.replace(position="center", fill="solid"),), "v3")  # blue left out: unmentioned
    scores = mention_agreement(moved, truth, only_red)
    assert scores["all"] == 1.0 and math.isnan(scores["position"]) and math.isnan(scores["background"])
    with_position = Mentions((say | {"position"}, frozenset()), background=True)
    scores = mention_agreement(moved, truth, with_position)
    assert scores["position"] == 0.0 and scores["background"] == 0.0 and scores["shape"] == 1.0
    assert scores["objects"] == 0.0 and scores["all"] == 0.0
    both = Mentions((say, say), background=False)
    twins = Scene("white", (red, red.replace(position="center")), "v3")
    assert mention_agreement(twins, twins, both)["objects"] == 1.0
    assert mention_agreement(moved, twins, both)["objects"] == 0.5  # one read circle cannot stand for two
    assert mention_agreement(twins, truth, both)["objects"] == 0.5  # the blue star is missing
    short = Mentions((frozenset(), frozenset()), background=True, count=True)
    assert mention_agreement(twins, truth, short)["count"] == 1.0
    assert mention_agreement(moved, truth, short)["count"] == 0.0
    full = describe(truth, "full").mentions
    assert mention_agreement(truth, truth, full)["all"] == 1.0
    assert mention_agreement(Scene("white", (red.replace(fill="solid"), blue), "v3"), truth, full)["fill"] == 0.5


def test_a_plan_tells_an_edited_scene_with_only_the_edited_words_changed(scenes: list[Scene]) -> None:
    edits = 0
    for i, scene in enumerate(scenes[:80]):
        partial = describe(scene, "partial", i)
        assert tell(scene, partial.plan) == partial.text and partial.plan.mentions == partial.mentions
        for o in partial.plan.objects:
            obj = scene.objects[o.index]
            if "color" in o.said:
                new = next(c for c in V3.allowed_colors[scene.background] if c != obj.color)
                edited = tell(scene.replace_object(o.index, color=new), partial.plan)
                pairs = zip(_words(partial.text), _words(edited), strict=True)
                changed = [(a, b) for a, b in pairs if a != b and {a, b} != {"a", "an"}]  # the article may follow
                assert changed == [(obj.color, new)] or partial.text.count(obj.color) > 1
                edits += 1
            if "size" in o.said and obj.fill == "solid":  # a filled object stays large
                other = "small" if obj.size == "large" else "large"
                edited = tell(scene.replace_object(o.index, size=other), partial.plan)
                assert len(_words(edited)) == len(_words(partial.text)) and edited != partial.text
    assert edits > 20
    with pytest.raises(ValueError, match="the plan describes"):
        tell(scene.remove_object(0) if len(scene.objects) > 1 else scene.add_object(_far(scene)), partial.plan)


def _far(scene: Scene) -> ShapeObject:
    taken = {o.position for o in scene.objects}
    free = next(p for p in ("top left", "top", "top right", "left", "center") if p not in taken)
    return ShapeObject("circle", scene.objects[0].color, "small", free)
