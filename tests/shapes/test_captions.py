"""Captions of the Shapes world: grammar coverage, token budget and exact round trip through the parser."""

from __future__ import annotations

import json
import re
from importlib import resources

import pytest

from diffinv.shapes import BACKGROUNDS, Scene, ShapeObject, caption, dataset, parse_caption
from diffinv.shapes.captions import TEMPLATES, caption_words, count_tokens, locate
from diffinv.shapes.vocab import (
    COLORS,
    MAX_CAPTION_TOKENS,
    POSITION_PHRASES,
    POSITIONS,
    SHAPES,
    SIZE_WORDS,
)

N_SCENES = 2400


@pytest.fixture(scope="module")
def scenes() -> list[Scene]:
    train = dataset("train", N_SCENES - 400, seed=5)
    return train + dataset("heldout_shape", 200, seed=5) + dataset("novel_combo", 200, seed=5)


@pytest.fixture(scope="module")
def captions(scenes: list[Scene]) -> list[str]:
    return [caption(scene, seed) for seed, scene in enumerate(scenes)]


def _expected(scene: Scene) -> Scene:
    return scene.without_jitter().canonical()


def test_round_trip_over_random_scenes(scenes: list[Scene], captions: list[str]) -> None:
    for scene, text in zip(scenes, captions, strict=True):
        assert parse_caption(text) == _expected(scene), text


def test_canonical_caption_round_trips(scenes: list[Scene]) -> None:
    for scene in scenes[:500]:
        text = caption(scene)
        assert caption(scene, None) == text
        assert parse_caption(text) == _expected(scene), text


def test_caption_is_deterministic_by_seed(scenes: list[Scene]) -> None:
    scene = next(s for s in scenes if len(s.objects) == 3)
    assert caption(scene, 123) == caption(scene, 123)
    assert len({caption(scene, seed) for seed in range(20)}) > 10


def test_every_caption_names_every_attribute(scenes: list[Scene], captions: list[str]) -> None:
    for scene, text in zip(scenes, captions, strict=True):
        words = text.replace(",", " ").split()
        assert f"{scene.background} background" in text
        for obj in scene.objects:
            assert obj.shape in words and obj.color in words
            assert any(w in words for w in SIZE_WORDS[obj.size])
            assert any(p in text for p in POSITION_PHRASES[obj.position])


def _template_of(text: str) -> int:
    bg = "|".join(BACKGROUNDS)
    patterns = [
        rf"[^,] on an? ({bg}) background$",
        rf", on an? ({bg}) background$",
        rf"^on an? ({bg}) background, ",
        rf"^an? ({bg}) background with ",
        rf", ({bg}) background$",
        rf"^({bg}) background, ",
    ]
    matches = [i for i, p in enumerate(patterns) if re.search(p, text)]
    assert len(matches) == 1, text
    return matches[0]


def test_all_variants_are_used(scenes: list[Scene], captions: list[str]) -> None:
    assert {_template_of(text) for text in captions} == set(range(len(TEMPLATES)))
    words = {w for text in captions for w in text.replace(",", " ").split()}
    assert {w for synonyms in SIZE_WORDS.values() for w in synonyms} <= words
    for phrases in POSITION_PHRASES.values():
        for phrase in phrases:
            assert any(re.search(rf"{phrase}(?=,| and | on an? |$)", t) for t in captions), phrase
    assert any(" and " in t for t in captions) and any(t.count(",") >= 2 for t in captions)
    # object order varies: some 2-object captions mention the objects in reverse scene order
    orders = set()
    for scene, text in zip(scenes, captions, strict=True):
        if len(scene.objects) == 2:
            first, second = (text.index(f"{o.color} {o.shape}") for o in scene.objects)
            orders.add(first < second)
    assert orders == {True, False}


def test_captions_are_short(scenes: list[Scene], captions: list[str]) -> None:
    assert max(count_tokens(t) for t in captions) <= MAX_CAPTION_TOKENS
    worst = Scene(
        "white",
        tuple(ShapeObject("pentagon", "turquoise", "large", p) for p in ("top left", "top right", "bottom left")),
    )
    assert all(count_tokens(caption(worst, seed)) <= MAX_CAPTION_TOKENS for seed in range(200))
    assert count_tokens(caption(worst)) <= MAX_CAPTION_TOKENS


def _clip_vocab() -> dict[str, int]:
    try:
        path = resources.files("diffinv") / "assets" / "clip_tokenizer" / "vocab.json"
        return json.loads(path.read_text())
    except (FileNotFoundError, ModuleNotFoundError):  # pragma: no cover - depends on the assets
        pytest.skip("CLIP tokenizer vocabulary not available")


def test_caption_words_are_single_clip_tokens() -> None:
    vocab = _clip_vocab()
    words = {"a", "an", "and", "on", "with", "background", ",", *SHAPES, *COLORS, *BACKGROUNDS}
    words |= {w for synonyms in SIZE_WORDS.values() for w in synonyms}
    words |= {w for phrases in POSITION_PHRASES.values() for p in phrases for w in p.split()}
    missing = sorted(w for w in words if f"{w}</w>" not in vocab)
    assert not missing, f"multi-token words break the token budget: {missing}"


def test_count_tokens_matches_the_clip_tokenizer(captions: list[str]) -> None:
    transformers = pytest.importorskip("transformers")
    path = resources.files("diffinv") / "assets" / "clip_tokenizer"
    if not path.is_dir():  # pragma: no cover - depends on the assets
        pytest.skip("CLIP tokenizer not available")
    tokenizer = transformers.CLIPTokenizer.from_pretrained(str(path))
    for text in captions[:100]:
        assert len(tokenizer.tokenize(text)) == count_tokens(text), text


def test_parse_accepts_harmless_formatting_changes() -> None:
    scene = Scene("gray", (ShapeObject("star", "red", "small", "top left"),))
    assert parse_caption("  A Tiny  RED star in the upper left,  on a gray background. ") == scene
    assert parse_caption("a tiny red star in the upper  left on a gray background") == scene


@pytest.mark.parametrize(
    "text",
    [
        "",
        "a small red star at the top left",  # no background
        "on a gray background",  # no object
        "a small red star at the top left on a gray background on a white background",
        "a small red star at the top left and a dog, on a gray background",
        "a medium red star at the top left, on a gray background",
        "a small red blob at the top left, on a gray background",
        "a small red star somewhere, on a gray background",
        "a small red star at the top left and a big blue circle at the top left, on a gray background",
        "a small gray star at the top left, on a white background",  # gray is not an object colour
        "a small white star at the top left, on a white background",  # no contrast
    ],
)
def test_parse_rejects_invalid_captions(text: str) -> None:
    with pytest.raises(ValueError):
        parse_caption(text)


def test_every_position_phrase_parses() -> None:
    for position in POSITIONS:
        for phrase in POSITION_PHRASES[position]:
            scene = parse_caption(f"a big black ring {phrase}, white background")
            assert scene.objects[0].position == position, phrase


def test_locate_finds_every_phrase_at_its_words(scenes: list[Scene], captions: list[str]) -> None:
    for scene, text in zip(scenes[:300], captions[:300], strict=True):
        layout = locate(text)
        assert layout.words == caption_words(text) and len(layout.words) == count_tokens(text)
        assert layout.words[layout.background_word] == "background" and layout.background == scene.background
        found = sorted((m.object.shape, m.object.color, m.object.size, m.object.position) for m in layout.objects)
        assert found == sorted((o.shape, o.color, o.size, o.position) for o in scene.objects)
        for mention in layout.objects:
            obj = mention.object
            assert layout.words[mention.first["shape"]] == obj.shape
            assert layout.words[mention.first["color"]] == obj.color
            assert layout.words[mention.first["size"]] in SIZE_WORDS[obj.size]
            phrase = " ".join(layout.words[mention.first["position"] : mention.last + 1])
            assert phrase in POSITION_PHRASES[obj.position]


def test_locate_rejects_text_that_is_not_a_normalised_caption() -> None:
    text = "a big red circle in the center on a white background"
    assert len(locate(text).objects) == 1
    for bad in ("a photo of a cat", text.upper(), text.replace(" ", "  ")):
        with pytest.raises(ValueError):
            locate(bad)
