"""Exact-target edits on the Shapes world: every edit of a scene has one right answer, the re-rendered edited scene.

An :class:`EditTask` changes one attribute — an object's colour, shape or size, or the background — of a held-out
scene. The target image is the edited scene rendered with the same jitter; the edited region is where the source
and target renders differ (dilated by 2 px), so "outside the edit" is exact. Captions are canonical, so source and
target prompts differ only in the edited word(s). ``strokes`` is SDEdit's first task: the guide is a crude stroke
painting of the scene and the target the scene itself.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from diffinv import shapes
from diffinv.bench.config import EDIT_KINDS
from diffinv.bench.datasets import SHAPES_IMAGE_SIZE
from diffinv.errors import DiffinvError
from diffinv.shapes import ALLOWED_COLORS, BACKGROUNDS, NOVEL_COMBOS, SIZES, TRAIN_SHAPES, Scene

ATTRIBUTE = {"recolor": "color", "reshape": "shape", "resize": "size", "background": "background", "strokes": "all"}
IMAGE_SIZE = SHAPES_IMAGE_SIZE  # the bench renders scenes at the dataset's size


@dataclass(frozen=True)
class EditTask:
    """One edit of a Shapes scene.

    Attributes:
        kind: one of :data:`EDIT_KINDS`; ``attribute``: the probe attribute it changes (``all`` for strokes).
        source / target: the scenes; ``index``: the edited object (−1 for background and strokes).
        source_prompt / target_prompt: canonical captions.
        old_words / new_words: the caption words the edit replaces (local-blend and negative-prompt words).
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


def make_task(scene: Scene, kind: str, rng: np.random.Generator | int) -> EditTask:
    """The ``kind`` edit of ``scene``: a seeded choice of object and new value that keeps the scene in the training
    distribution (contrasting colours, train shapes, no novel colour × shape pair)."""
    if kind not in EDIT_KINDS:
        raise DiffinvError(f"unknown edit {kind!r}; choose from {', '.join(EDIT_KINDS)}")
    rng = np.random.default_rng(rng)
    index = int(rng.integers(len(scene.objects))) if kind not in ("background", "strokes") else -1
    if kind == "strokes":
        target, old, new = scene, (), ()
    elif kind == "background":
        fits = [
            b for b in BACKGROUNDS if b != scene.background and all(o.color in ALLOWED_COLORS[b] for o in scene.objects)
        ]
        value = _choose(rng, fits, "background")
        target, old, new = scene.replace(background=value), (scene.background,), (value,)
    else:
        obj = scene.objects[index]
        if kind == "recolor":
            options = [
                c for c in ALLOWED_COLORS[scene.background] if c != obj.color and (c, obj.shape) not in NOVEL_COMBOS
            ]
            field = "color"
        elif kind == "reshape":
            options = [s for s in TRAIN_SHAPES if s != obj.shape and (obj.color, s) not in NOVEL_COMBOS]
            field = "shape"
        else:
            options = [s for s in SIZES if s != obj.size]
            field = "size"
        value = _choose(rng, options, field)
        target = scene.replace_object(index, **{field: value})
        old, new = (getattr(obj, field),), (value,)
    source_image, target_image = shapes.render(scene, IMAGE_SIZE), shapes.render(target, IMAGE_SIZE)
    changed = (source_image != target_image).any(axis=-1)
    region = ndimage.binary_dilation(changed, iterations=2) if changed.any() else changed
    return EditTask(
        kind,
        scene,
        target,
        index,
        shapes.caption(scene),
        shapes.caption(target),
        old,
        new,
        region,
        source_image,
        target_image,
    )
