"""What the concept bench asks of a personalization method, and how it scores the answer, on shapes the built-in
model never saw (:mod:`diffinv.shapes.novel`).

Training shots: the concept as a large object on white, in up to :data:`SHOTS` colours and places, each captioned
in the model's language with ``{}`` where the shape word goes. Evaluation: the concept in :data:`EVAL_PROMPTS` —
colours, places and backgrounds no shot had — at :data:`EVAL_SEEDS` seeds. Fidelity: the generated object's
silhouette against the concept's exact one (:func:`~diffinv.shapes.novel.silhouette_iou`; the probe cannot name a
novel shape, so the shape is measured geometrically). Editability: the probe reads the prompt's colour, position
and background.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import numpy as np
from PIL import Image

from diffinv.shapes import probe as shapes_probe
from diffinv.shapes.novel import ConceptShape, concept_caption, object_mask, silhouette_iou
from diffinv.shapes.world import DEFAULT_WORLD

SHOTS: Final[tuple[tuple[str, str], ...]] = (
    ("red", "center"),
    ("blue", "top left"),
    ("green", "bottom right"),
    ("orange", "top right"),
    ("purple", "bottom left"),
)
"""(colour, position) of the training shots, large, on white; ``k`` shots are the first ``k``."""

EVAL_PROMPTS: Final[tuple[tuple[str, str, str], ...]] = (
    ("yellow", "top right", "black"),
    ("red", "left", "yellow"),
    ("blue", "bottom", "white"),
    ("white", "center", "blue"),
    ("orange", "top left", "green"),
    ("purple", "right", "pink"),
)
"""(colour, position, background) of the evaluation prompts: no shot has them."""

EVAL_SEEDS: Final[tuple[int, ...]] = (0, 1)


@dataclass(frozen=True)
class Shots:
    """``k`` training images of a concept and their caption templates."""

    images: list[Image.Image]
    captions: list[str]


def training_shots(shape: ConceptShape, k: int, size: int = 64) -> Shots:
    if not 1 <= k <= len(SHOTS):
        raise ValueError(f"1 to {len(SHOTS)} shots, got {k}")
    images = [Image.fromarray(shape.render(color, position, "white", size)[0]) for color, position in SHOTS[:k]]
    captions = [concept_caption(color, position, "white", world=shape.world) for color, position in SHOTS[:k]]
    return Shots(images, captions)


def eval_prompts(word: str, world: str = DEFAULT_WORLD) -> list[str]:
    """The evaluation prompts with the concept called ``word`` (its token, or a baseline's word), in ``world``'s
    grammar."""
    return [concept_caption(c, position, background, word, world) for c, position, background in EVAL_PROMPTS]


def score(
    shape: ConceptShape, images: list[Image.Image], size: int = 64, probe: shapes_probe.ShapesProbe | None = None
) -> dict[str, float]:
    """Fidelity and editability of ``images``, one per (evaluation prompt, seed) in that order; ``probe`` reads
    colours, positions and backgrounds (default: the shipped one)."""
    reference = shape.render("red", "center", "white", size)[1]
    reads = shapes_probe.read_scenes([image.resize((size, size)) for image in images], probe)
    ious, colors, positions, backgrounds, all_right = [], [], [], [], []
    for i, (image, read) in enumerate(zip(images, reads, strict=True)):
        color, position, background = EVAL_PROMPTS[i // len(EVAL_SEEDS)]
        pixels = np.asarray(image.convert("RGB").resize((size, size)))
        ious.append(silhouette_iou(object_mask(pixels, background), reference))
        objects = {(o.position, o.color) for o in read.objects}
        colors.append(any(c == color for _, c in objects))
        positions.append(any(p == position for p, _ in objects))
        backgrounds.append(read.background == background)
        all_right.append((position, color) in objects and read.background == background)
    return {
        "fidelity": float(np.mean(ious)),
        "editability": float(np.mean(all_right)),
        "color_right": float(np.mean(colors)),
        "position_right": float(np.mean(positions)),
        "background_right": float(np.mean(backgrounds)),
    }
