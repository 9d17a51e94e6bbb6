"""Captions at three levels of detail, as people write them, with a record of what each one mentions.

Real captions name a fraction of what a photo holds; inversion and attention control exist to keep the unnamed rest.
:func:`describe` captions one scene at a level:

* ``full``: every object with every attribute, and the background (:func:`~diffinv.shapes.captions.caption`);
* ``partial``: some objects or attributes left out, as a person would: only the largest object or a few of them;
  no size, no position, no fill, sometimes no colour; "a shape" instead of the shape's name; no background;
  synonyms and other word orders ("a red circle on the left and a small star, white background");
* ``short``: how many shapes, and sometimes the background ("two shapes on a green background").

The :class:`Mentions` record says, for every object of the scene, which of its attributes the caption names (none:
the object goes unmentioned), and whether it names the background and the number of objects, so benches can score
mentioned and unmentioned content separately. A full caption mentions everything (a solid object's fill goes unsaid
there: solid is what an unmarked object is); a partial caption mentions a fill only where it says it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

import numpy as np

from diffinv.shapes.captions import (
    LAST_SEPARATORS,
    TEMPLATES,
    article,
    caption,
    count_tokens,
    fill_template,
    join_phrases,
)
from diffinv.shapes.scene import Scene, ShapeObject
from diffinv.shapes.vocab import POSITION_PHRASES, SIZE_WORDS
from diffinv.shapes.world import FILL_WORDS, get_world

LEVELS: Final[tuple[str, ...]] = ("full", "partial", "short")
"""Levels of detail of :func:`describe`."""

ATTRIBUTES: Final[tuple[str, ...]] = ("shape", "color", "size", "position", "fill")
"""The attributes of an object a caption may mention."""

GENERIC_WORDS: Final[tuple[str, ...]] = ("shape", "object")
"""Words that stand for an object whose shape a partial caption leaves out."""

COUNT_WORDS: Final[tuple[str, ...]] = ("one", "two", "three", "four")
"""``COUNT_WORDS[n - 1]`` names ``n`` objects in short captions."""

SHORT_BACKGROUND: Final[float] = 0.7
"""Probability that a short caption names the background."""


@dataclass(frozen=True)
class PartialStyle:
    """How often a partial caption leaves each thing out (probabilities, drawn independently)."""

    largest_only: float = 0.35
    """Mention only the largest object (the first drawn of the largest ones)."""
    some_objects: float = 0.3
    """Otherwise, mention a random non-empty strict subset of the objects (scenes of two or more)."""
    drop_size: float = 0.45
    drop_position: float = 0.5
    drop_fill: float = 0.5
    drop_color: float = 0.2
    generic_shape: float = 0.15
    """Say "a shape" / "an object" instead of the shape's name (never together with no colour)."""
    drop_background: float = 0.4


PARTIAL_STYLE: Final[PartialStyle] = PartialStyle()


@dataclass(frozen=True)
class Mentions:
    """What a caption says about its scene."""

    objects: tuple[frozenset[str], ...]
    """Per scene object (scene order), the :data:`ATTRIBUTES` the caption names; empty: not mentioned."""
    background: bool
    count: bool = False
    """Whether the caption says how many objects there are (short captions)."""

    def mentioned(self, index: int) -> bool:
        """Whether object ``index`` is mentioned at all."""
        return bool(self.objects[index])

    def to_dict(self) -> dict[str, Any]:
        return {
            "objects": [sorted(a, key=ATTRIBUTES.index) for a in self.objects],
            "background": self.background,
            "count": self.count,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Mentions:
        unknown = set(data) - {"objects", "background", "count"}
        if unknown:
            raise ValueError(f"unknown mentions field(s): {', '.join(sorted(unknown))}")
        objects = tuple(frozenset(a) for a in data["objects"])
        bad = set().union(*objects) - set(ATTRIBUTES)
        if bad:
            raise ValueError(f"unknown attribute(s) {sorted(bad)}; expected some of {', '.join(ATTRIBUTES)}")
        return cls(objects, bool(data["background"]), bool(data.get("count", False)))


@dataclass(frozen=True)
class ObjectPlan:
    """How a caption describes one object: which attributes it says and the synonyms it picks (fractions in
    ``[0, 1)``, so one plan tells a scene whose object changed size: small has three words, large two)."""

    index: int
    """The object's index in the scene."""
    said: frozenset[str]
    size_word: float
    position_phrase: float
    generic_word: float
    """Which of :data:`GENERIC_WORDS` stands for the shape when the caption does not say it."""


@dataclass(frozen=True)
class Plan:
    """Everything a caption at a level other than ``full`` chose, apart from the scene's values: :func:`tell` turns it
    into text for any scene of the same objects (e.g. the same scene with one colour edited), so a source caption and
    its edited target differ only in the edited words."""

    level: str
    objects: tuple[ObjectPlan, ...]
    """In caption order (empty for short captions)."""
    n_objects: int
    background: bool
    template: int
    separator: int
    count_noun: int = 0
    """Short captions: which of :data:`GENERIC_WORDS` counts the objects."""

    @property
    def mentions(self) -> Mentions:
        said = {o.index: o.said for o in self.objects}
        objects = tuple(said.get(i, frozenset()) for i in range(self.n_objects))
        return Mentions(objects, self.background, count=self.level == "short")


@dataclass(frozen=True)
class Description:
    """A caption of a scene at one level of detail, what it mentions, and (below ``full``) the :class:`Plan` that
    tells it."""

    text: str
    level: str
    mentions: Mentions
    plan: Plan | None = None


def describe(scene: Scene, level: str = "full", rng: np.random.Generator | int | None = None) -> Description:
    """Caption ``scene`` at ``level`` (one of :data:`LEVELS`); ``rng`` (a generator or a seed; ``None``: the
    canonical full caption, and seed 0 for the other levels) chooses what is left out, synonyms and word order."""
    if level not in LEVELS:
        raise ValueError(f"invalid caption level {level!r}; expected one of {', '.join(LEVELS)}")
    if level == "full":
        everything = frozenset(ATTRIBUTES)
        return Description(caption(scene, rng), level, Mentions(tuple(everything for _ in scene.objects), True))
    rng = np.random.default_rng(0 if rng is None else rng)
    plan = _short_plan(scene, rng) if level == "short" else _partial_plan(scene, rng, PARTIAL_STYLE)
    return Description(tell(scene, plan), level, plan.mentions, plan)


def tell(scene: Scene, plan: Plan) -> str:
    """The caption ``plan`` makes of ``scene`` (which must have the plan's number of objects)."""
    if len(scene.objects) != plan.n_objects:
        raise ValueError(f"the plan describes {plan.n_objects} objects, the scene has {len(scene.objects)}")
    if plan.level == "short":
        noun = GENERIC_WORDS[plan.count_noun]
        objects = f"{article(noun)} {noun}" if plan.n_objects == 1 else f"{COUNT_WORDS[plan.n_objects - 1]} {noun}s"
    else:
        phrases = [_phrase(scene.objects[o.index], o) for o in plan.objects]
        objects = join_phrases(phrases, LAST_SEPARATORS[plan.separator])
    return fill_template(TEMPLATES[plan.template], objects, scene.background) if plan.background else objects


def synonym(options: tuple[str, ...], fraction: float) -> str:
    """The synonym a plan's ``fraction`` in ``[0, 1)`` picks among ``options`` (any number of them)."""
    return options[min(int(fraction * len(options)), len(options) - 1)]


def _phrase(obj: ShapeObject, plan: ObjectPlan) -> str:
    words = [synonym(SIZE_WORDS[obj.size], plan.size_word)] if "size" in plan.said else []
    words += [obj.color] if "color" in plan.said else []
    words += list(FILL_WORDS[obj.fill]) if "fill" in plan.said else []
    words.append(obj.shape if "shape" in plan.said else synonym(GENERIC_WORDS, plan.generic_word))
    phrase = f"{article(words[0])} {' '.join(words)}"
    if "position" in plan.said:
        phrase += " " + synonym(POSITION_PHRASES[obj.position], plan.position_phrase)
    return phrase


def _short_plan(scene: Scene, rng: np.random.Generator) -> Plan:
    noun = int(rng.integers(len(GENERIC_WORDS)))
    background = bool(rng.random() < SHORT_BACKGROUND)
    template = int(rng.integers(len(TEMPLATES)))
    return Plan("short", (), len(scene.objects), background, template, 0, count_noun=noun)


def _largest(scene: Scene) -> int:
    sizes = get_world(scene.world).size_fraction
    return max(range(len(scene.objects)), key=lambda i: (sizes[scene.objects[i].size], -i))


def _kept_objects(scene: Scene, rng: np.random.Generator, style: PartialStyle) -> list[int]:
    n = len(scene.objects)
    draw = rng.random()
    if draw < style.largest_only:
        return [_largest(scene)]
    if n > 1 and draw < style.largest_only + style.some_objects:
        count = int(rng.integers(1, n))
        return sorted(int(i) for i in rng.choice(n, size=count, replace=False))
    return list(range(n))


def _object_plan(index: int, obj: ShapeObject, rng: np.random.Generator, style: PartialStyle) -> ObjectPlan:
    said = set(ATTRIBUTES)
    if rng.random() < style.drop_size:
        said.discard("size")
    if rng.random() < style.drop_position:
        said.discard("position")
    if obj.fill == "solid" or rng.random() < style.drop_fill:
        said.discard("fill")
    if rng.random() < style.drop_color:
        said.discard("color")
    elif rng.random() < style.generic_shape:
        said.discard("shape")
    size_word, position_phrase, generic_word = (float(v) for v in rng.random(3))
    return ObjectPlan(index, frozenset(said), size_word, position_phrase, generic_word)


def _partial_plan(scene: Scene, rng: np.random.Generator, style: PartialStyle) -> Plan:
    full = frozenset(ATTRIBUTES)
    budget = get_world(scene.world).max_caption_tokens
    for _ in range(16):  # redraw until something is left out (a partial caption is never a full one)
        kept = _kept_objects(scene, rng, style)
        objects = tuple(_object_plan(int(i), scene.objects[int(i)], rng, style) for i in rng.permutation(kept))
        background = bool(rng.random() >= style.drop_background)
        template, separator = int(rng.integers(len(TEMPLATES))), int(rng.integers(len(LAST_SEPARATORS)))
        plan = Plan("partial", objects, len(scene.objects), background, template, separator)
        says_all = all(
            said | ({"fill"} if obj.fill == "solid" else set()) == full
            for said, obj in zip(plan.mentions.objects, scene.objects, strict=True)
        )
        if not (background and says_all) and count_tokens(tell(scene, plan)) <= budget:
            return plan
    raise RuntimeError("could not draw a partial caption")  # pragma: no cover - each try leaves out with p > 0.4


def mention_agreement(read: Scene, truth: Scene, mentions: Mentions) -> dict[str, float]:
    """Whether an image read as ``read`` shows what a caption of ``truth`` with ``mentions`` asks for, and nothing
    it rules out: the caption's own measure of a generation (what it leaves out may be anything).

    The mentioned objects are matched one to one with read objects (the best of every assignment, at most 4! of
    them) on their mentioned attributes only: a caption without positions may put its objects anywhere. Returns, in
    [0, 1]: per attribute of :data:`ATTRIBUTES`, the fraction of its mentions the matched objects get right
    (``nan`` when the caption mentions it nowhere); ``background`` (``nan`` when unmentioned); ``count`` (the read
    scene has as many objects as ``truth``; ``nan`` unless the caption says how many); ``objects``, the fraction of
    mentioned objects matched on everything mentioned; and ``all``, 1.0 when everything mentioned is right.
    """
    from itertools import permutations

    wanted = [(truth.objects[i], said) for i, said in enumerate(mentions.objects) if said]
    best: tuple[int, list[tuple[ShapeObject, frozenset[str], ShapeObject | None]]] = (-1, [])
    candidates: list[ShapeObject | None] = [*read.objects, *([None] * len(wanted))]
    for chosen in permutations(candidates, len(wanted)):
        pairs = [(obj, said, got) for (obj, said), got in zip(wanted, chosen, strict=True)]
        score = sum(got is not None and _matches(obj, got, said) for obj, said, got in pairs)
        if score > best[0]:
            best = (score, pairs)
    scores: dict[str, float] = {}
    for attribute in ATTRIBUTES:
        judged = [got is not None and getattr(obj, attribute) == getattr(got, attribute)
                  for obj, said, got in best[1] if attribute in said]  # fmt: skip
        scores[attribute] = sum(judged) / len(judged) if judged else float("nan")
    scores["background"] = float(read.background == truth.background) if mentions.background else float("nan")
    scores["count"] = float(len(read.objects) == len(truth.objects)) if mentions.count else float("nan")
    scores["objects"] = best[0] / len(wanted) if wanted else float("nan")
    scores["all"] = float(all(v == 1.0 for v in scores.values() if v == v))  # nan != nan: unmentioned
    return scores


def _matches(obj: ShapeObject, got: ShapeObject, said: frozenset[str]) -> bool:
    return all(getattr(obj, a) == getattr(got, a) for a in said)
