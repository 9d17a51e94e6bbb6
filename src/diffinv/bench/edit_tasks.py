"""Exact-target edits on the Shapes world: every edit of a scene has one right answer, the re-rendered edited scene.

An :class:`EditTask` changes one attribute — an object's colour, shape or size, or the background — of a held-out
scene. The target image is the edited scene rendered with the same jitter; the edited region is where the source
and target renders differ (dilated by 2 px), so "outside the edit" is exact. Source and target prompts differ only
in the edited word(s): canonical captions, or, for a sample with a partial caption (``shapes-partial:N``), that
caption and the same plan told of the edited scene (:func:`diffinv.shapes.descriptions.tell`) — then the edit
changes only something the caption mentions, and what it leaves out must survive the edit unnamed. ``strokes`` is
SDEdit's first task: the guide is a crude stroke painting of the scene and the target the scene itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from diffinv import shapes
from diffinv.bench.config import EDIT_KINDS
from diffinv.bench.datasets import SHAPES_IMAGE_SIZE
from diffinv.errors import DiffinvError
from diffinv.shapes import Scene
from diffinv.shapes.descriptions import ATTRIBUTES, Description, Mentions, synonym, tell
from diffinv.shapes.vocab import SIZE_WORDS
from diffinv.shapes.world import get_world

ATTRIBUTE = {"recolor": "color", "reshape": "shape", "resize": "size", "background": "background", "strokes": "all"}
IMAGE_SIZE = SHAPES_IMAGE_SIZE  # the bench renders scenes at the dataset's size


@dataclass(frozen=True)
class EditTask:
    """One edit of a Shapes scene.

    Attributes:
        kind: one of :data:`EDIT_KINDS`; ``attribute``: the probe attribute it changes (``all`` for strokes).
        source / target: the scenes; ``index``: the edited object (−1 for background and strokes).
        source_prompt / target_prompt: the captions (canonical, or the sample's partial one and its retelling).
        old_words / new_words: the caption words the edit replaces (local-blend and negative-prompt words).
        mentions: what the source prompt mentions (everything, for canonical captions).
        region: ``(H, W)`` bool, where the source and target renders differ (dilated by 2 px).
        source_image / target_image: the renders, uint8 ``(H, W, 3)``.
    """

    kind: str
    source: Scene
    target: Scene
    index: int
    source_prompt: str
    target_prompt: str
    old_words: tuple[str, ...]
    new_words: tuple[str, ...]
    region: np.ndarray
    source_image: np.ndarray
    target_image: np.ndarray
    mentions: Mentions

    @property
    def attribute(self) -> str:
        return ATTRIBUTE[self.kind]

    @property
    def blend_words(self) -> tuple[str, ...]:
        """Local-blend words: the edited words and, for object edits, the object's shape word(s) — each only if it
        names nothing else in its caption (a colour shared with another object would unmask that object too)."""
        if self.kind == "background":
            return ("background",)
        source_shape, target_shape = self.source.objects[self.index].shape, self.target.objects[self.index].shape
        candidates = dict.fromkeys((*self.old_words, *self.new_words, source_shape, target_shape))
        words = self.source_prompt.replace(",", " ").split() + self.target_prompt.replace(",", " ").split()
        unique = tuple(w for w in candidates if words.count(w) <= 2)
        return unique or (target_shape,)


def _choose(rng: np.random.Generator, options: list[str], what: str) -> str:
    if not options:
        raise DiffinvError(f"no {what} fits this scene")
    return options[int(rng.integers(len(options)))]


def _editable(kind: str, scene: Scene, description: Description | None) -> list[int]:
    """The objects an edit of ``kind`` may change: every one for a canonical caption, else those whose edited
    attribute the caption mentions."""
    if description is None or description.plan is None:
        return list(range(len(scene.objects)))
    said = description.mentions.objects
    return [i for i in range(len(scene.objects)) if ATTRIBUTE[kind] in said[i]]


def make_task(
    scene: Scene, kind: str, rng: np.random.Generator | int, description: Description | None = None
) -> EditTask:
    """The ``kind`` edit of ``scene``: a seeded choice of object and new value that keeps the scene in its world's
    training distribution (contrasting colours, train shapes, no novel colour × shape pair). With a ``description``
    below the full level, only what it mentions is edited and the prompts are its text and its plan told of the
    edited scene; DiffinvError when nothing of that kind is mentioned (or fits)."""
    if kind not in EDIT_KINDS:
        raise DiffinvError(f"unknown edit {kind!r}; choose from {', '.join(EDIT_KINDS)}")
    world = get_world(scene.world)
    plan = description.plan if description is not None else None
    rng = np.random.default_rng(rng)
    index = -1
    if kind not in ("background", "strokes"):
        candidates = _editable(kind, scene, description)
        if not candidates:
            raise DiffinvError(f"the caption mentions no object's {ATTRIBUTE[kind]}")
        index = candidates[int(rng.integers(len(candidates)))]
    if kind == "strokes":
        target, old, new = scene, (), ()
    elif kind == "background":
        if plan is not None and not plan.background:
            raise DiffinvError("the caption does not mention the background")
        allowed = world.allowed_colors
        fits = [
            b for b in world.backgrounds if b != scene.background and all(o.color in allowed[b] for o in scene.objects)
        ]
        value = _choose(rng, fits, "background")
        target, old, new = scene.replace(background=value), (scene.background,), (value,)
    else:
        obj = scene.objects[index]
        novel = world.novel_combos
        if kind == "recolor":
            options = [
                c for c in world.allowed_colors[scene.background] if c != obj.color and (c, obj.shape) not in novel
            ]
            field = "color"
        elif kind == "reshape":
            options = [s for s in world.train_shapes if s != obj.shape and (obj.color, s) not in novel]
            field = "shape"
        else:
            options = [s for s in world.sizes if s != obj.size and (obj.fill == "solid" or s in world.fill_sizes)]
            field = "size"
        value = _choose(rng, options, field)
        target = scene.replace_object(index, **{field: value})
        old, new = (getattr(obj, field),), (value,)
        if field == "size" and plan is not None:  # the size words the caption picked
            fraction = next(o.size_word for o in plan.objects if o.index == index)
            old, new = (synonym(SIZE_WORDS[obj.size], fraction),), (synonym(SIZE_WORDS[value], fraction),)
    source_image, target_image = shapes.render(scene, IMAGE_SIZE), shapes.render(target, IMAGE_SIZE)
    changed = (source_image != target_image).any(axis=-1)
    region = ndimage.binary_dilation(changed, iterations=2) if changed.any() else changed
    if plan is None:
        prompts = shapes.caption(scene), shapes.caption(target)
        mentions = Mentions(tuple(frozenset(ATTRIBUTES) for _ in scene.objects), background=True)
    else:
        prompts, mentions = (description.text, tell(target, plan)), description.mentions
    return EditTask(kind, scene, target, index, *prompts, old, new, region, source_image, target_image, mentions)
