"""Full captions of Shapes scenes: a small grammar with synonyms and word-order variation, and its parser.

Every caption names the size, colour, shape and position of every object (and, in world v3, a fill other than
solid: "a large red striped circle") and the background colour, so :func:`parse_caption` recovers the scene
exactly (up to jitter and object order)::

    a large red circle on the left and a small blue star at the top right, on a yellow background
    on a yellow background, a little blue star in the upper right and a big red circle on the left side
    a yellow background with a big red circle at the left and a tiny blue star in the top right

All vocabulary words are single CLIP tokens, so the token count of a caption is its number of words plus
commas; captions never exceed their world's ``max_caption_tokens``. Captions that leave things out, as people
write them, are :mod:`diffinv.shapes.descriptions`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Final

import numpy as np

from diffinv.shapes.scene import Scene, ShapeObject
from diffinv.shapes.vocab import BACKGROUNDS, COLORS, POSITION_PHRASES, SIZE_WORDS
from diffinv.shapes.world import DEFAULT_WORLD, FILL_WORDS, get_world

RngLike = np.random.Generator | int | None

TEMPLATES: Final[tuple[str, ...]] = (
    "{objects} on {bg} background",
    "{objects}, on {bg} background",
    "on {bg} background, {objects}",
    "{bg} background with {objects}",
    "{objects}, {bg_bare} background",
    "{bg_bare} background, {objects}",
)
"""Caption templates: ``{bg}`` is the background colour with its article, ``{bg_bare}`` without it.
The first template is the canonical one, used when no random generator is given."""

_COMPACT_TEMPLATE: Final[str] = TEMPLATES[4]
"""Fallback template for captions that would otherwise exceed the token budget."""

LAST_SEPARATORS: Final[tuple[str, ...]] = (" and ", ", ")
"""Separators before the last object of a list (the others are separated by commas)."""

_MAX_TRIES: Final[int] = 8
"""Random captions drawn before falling back to the compact form when over the token budget."""


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def count_tokens(text: str) -> int:
    """CLIP token count of a caption (start/end tokens excluded): words plus commas."""
    return len(text.replace(",", " , ").split())


def _object_phrase(obj: ShapeObject, size_word: str, position_phrase: str) -> str:
    words = " ".join((size_word, obj.color, *FILL_WORDS[obj.fill], obj.shape))
    return f"{article(size_word)} {words} {position_phrase}"


def join_phrases(phrases: Sequence[str], last_separator: str) -> str:
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + last_separator + phrases[-1]


def fill_template(template: str, objects: str, background: str) -> str:
    return template.format(objects=objects, bg=f"{article(background)} {background}", bg_bare=background)


def _canonical_caption(scene: Scene, objects: Sequence[ShapeObject], template: str) -> str:
    phrases = [_object_phrase(o, SIZE_WORDS[o.size][0], POSITION_PHRASES[o.position][0]) for o in objects]
    return fill_template(template, join_phrases(phrases, LAST_SEPARATORS[0]), scene.background)


def _random_caption(scene: Scene, rng: np.random.Generator) -> str:
    order = rng.permutation(len(scene.objects))
    phrases = []
    for i in order:
        obj = scene.objects[i]
        size_words, position_phrases = SIZE_WORDS[obj.size], POSITION_PHRASES[obj.position]
        size_word = size_words[rng.integers(len(size_words))]
        phrases.append(_object_phrase(obj, size_word, position_phrases[rng.integers(len(position_phrases))]))
    separator = LAST_SEPARATORS[rng.integers(len(LAST_SEPARATORS))]
    template = TEMPLATES[rng.integers(len(TEMPLATES))]
    return fill_template(template, join_phrases(phrases, separator), scene.background)


def caption(scene: Scene, rng: RngLike = None) -> str:
    """Describe ``scene`` in one short lowercase sentence.

    Args:
        scene: The scene to describe.
        rng: ``None`` for the canonical caption (first synonyms, scene object order, first template);
            otherwise a :class:`numpy.random.Generator` or an integer seed choosing synonyms, object order,
            list separator and template. Deterministic for a given seed.

    Returns:
        A caption naming every attribute of every object and the background, of at most the scene's world's
        ``max_caption_tokens`` CLIP tokens.
    """
    budget = get_world(scene.world).max_caption_tokens
    if rng is None:
        text = _canonical_caption(scene, scene.objects, TEMPLATES[0])
        if count_tokens(text) <= budget:
            return text
        return _canonical_caption(scene, scene.objects, _COMPACT_TEMPLATE)
    rng = np.random.default_rng(rng)
    for _ in range(_MAX_TRIES):
        text = _random_caption(scene, rng)
        if count_tokens(text) <= budget:
            return text
    order = [scene.objects[i] for i in rng.permutation(len(scene.objects))]
    return _canonical_caption(scene, order, _COMPACT_TEMPLATE)


# --------------------------------------------------------------------------------------------------------
# Parsing
# --------------------------------------------------------------------------------------------------------


def _alternation(options: Sequence[str]) -> str:
    """Regex alternation of literal phrases, longest first so that longer phrases win."""
    return "|".join(re.escape(o).replace(r"\ ", r"\s+") for o in sorted(options, key=len, reverse=True))


_SIZE_OF_WORD: Final = {w: size for size, words in SIZE_WORDS.items() for w in words}
_POSITION_OF_PHRASE: Final = {p: pos for pos, phrases in POSITION_PHRASES.items() for p in phrases}

_FILL_OF_WORD: Final = {w: fill for fill, words in FILL_WORDS.items() for w in words}
_BACKGROUND_RE: Final = re.compile(
    rf"\b(?:on\s+)?(?:an?\s+)?(?P<bg>{_alternation(BACKGROUNDS)})\s+background(?:\s+with)?\b"
)


@cache
def _object_re(name: str) -> re.Pattern[str]:
    """One object phrase of the captions of the world ``name`` (a fill word only where the world has fills)."""
    world = get_world(name)
    fill = rf"(?:(?P<fill>{_alternation(list(_FILL_OF_WORD))})\s+)?" if len(world.fills) > 1 else ""
    return re.compile(
        rf"\b(?:an?\s+)?(?P<size>{_alternation(list(_SIZE_OF_WORD))})\s+(?P<color>{_alternation(COLORS)})"
        rf"\s+{fill}(?P<shape>{_alternation(world.shapes)})\s+(?P<position>{_alternation(list(_POSITION_OF_PHRASE))})\b"
    )


def _matched_object(m: re.Match[str]) -> ShapeObject:
    return ShapeObject(
        shape=m["shape"],
        color=m["color"],
        size=_SIZE_OF_WORD[m["size"]],
        position=_POSITION_OF_PHRASE[" ".join(m["position"].split())],
        fill=_FILL_OF_WORD[m["fill"]] if m.groupdict().get("fill") else "solid",
    )


_FILLER_WORDS: Final = frozenset({"and"})


def parse_caption(text: str, world: str = DEFAULT_WORLD) -> Scene:
    """Recover the scene of ``world`` described by a caption produced by :func:`caption` (any variant).

    The returned scene has no jitter and its objects in row-major cell order (see :meth:`Scene.canonical`).

    Raises:
        ValueError: If the text is not a caption of the grammar or describes an invalid scene.
    """
    norm = " ".join(text.lower().strip().rstrip(".").split())
    backgrounds = list(_BACKGROUND_RE.finditer(norm))
    if len(backgrounds) != 1:
        raise ValueError(f"expected exactly one background in caption {text!r}, found {len(backgrounds)}")
    match = backgrounds[0]
    background = match["bg"]
    rest = norm[: match.start()] + " , " + norm[match.end() :]
    objects = []
    leftover = []
    last = 0
    for m in _object_re(world).finditer(rest):
        leftover.append(rest[last : m.start()])
        last = m.end()
        objects.append(_matched_object(m))
    leftover.append(rest[last:])
    unexpected = set(" ".join(leftover).replace(",", " ").split()) - _FILLER_WORDS
    if unexpected:
        raise ValueError(f"unexpected words {sorted(unexpected)} in caption {text!r}")
    if not objects:
        raise ValueError(f"no object found in caption {text!r}")
    return Scene(background=background, objects=tuple(objects), world=world).canonical()


# --------------------------------------------------------------------------------------------------------
# Where each part of a caption sits (token positions)
# --------------------------------------------------------------------------------------------------------

_TOKEN_RE: Final = re.compile(r"[a-z]+|,")
"""One CLIP token of a caption: a vocabulary word or a comma (see the module docstring)."""


@dataclass(frozen=True)
class ObjectMention:
    """Where one object is described: word positions are 0-based indices into :func:`caption_words`."""

    object: ShapeObject
    first: Mapping[str, int]
    """Position of the first word of each attribute: ``size``, ``color``, ``shape``, ``position`` (and ``fill``
    where the caption names one)."""
    last: int
    """Position of the phrase's last word (the end of the position phrase)."""


@dataclass(frozen=True)
class CaptionLayout:
    """The word positions of a caption's background and object phrases (see :func:`locate`)."""

    words: tuple[str, ...]
    background: str
    background_word: int
    """Position of the word ``background``."""
    objects: tuple[ObjectMention, ...]
    """In caption order."""


def caption_words(text: str) -> tuple[str, ...]:
    """The words and commas of a normalised caption; each is one CLIP token, in order after BOS."""
    return tuple(m.group() for m in _TOKEN_RE.finditer(text))


def locate(text: str, world: str = DEFAULT_WORLD) -> CaptionLayout:
    """Word positions of every phrase of a caption of ``world`` produced by :func:`caption` (lowercase, single
    spaces).

    Raises:
        ValueError: If ``text`` is not such a caption.
    """
    parse_caption(text, world)  # validates the grammar
    matches = list(_TOKEN_RE.finditer(text))
    start_of = {m.start(): i for i, m in enumerate(matches)}
    end_of = {m.end(): i for i, m in enumerate(matches)}
    backgrounds = list(_BACKGROUND_RE.finditer(text))
    if len(backgrounds) != 1 or text != " ".join(text.split()) or text != text.lower():
        raise ValueError(f"not a normalised caption: {text!r}")
    background_word = end_of[backgrounds[0].end("bg")] + 1
    mentions = []
    for m in _object_re(world).finditer(text):
        first = {
            name: start_of[m.start(name)]
            for name in ("size", "color", "fill", "shape", "position")
            if m.groupdict().get(name)
        }
        mentions.append(ObjectMention(object=_matched_object(m), first=first, last=end_of[m.end("position")]))
    return CaptionLayout(
        words=tuple(m.group() for m in matches),
        background=backgrounds[0]["bg"],
        background_word=background_word,
        objects=tuple(mentions),
    )
