"""Benchmark datasets: a list of :class:`Sample` (stable id, caption, lazily loaded image, optional Shapes truth).

Specs understood by :func:`load_dataset`:

* ``shapes:N`` — N scenes of the Shapes world's held-out test split, rendered at 64 px, with full captions (every
  object and attribute named);
* ``shapes-partial:N`` — the same scenes with captions as people write them, leaving objects and attributes out
  (:mod:`diffinv.shapes.descriptions`); each sample's ``description`` says what its caption names, so benches can score
  mentioned and unmentioned content apart. ``@WORLD`` after N picks the Shapes world (``shapes-partial:100@v3``;
  default :data:`~diffinv.shapes.world.DEFAULT_WORLD`);
* ``photos`` — the real photos bundled with scikit-image, with our captions (``assets/photos/captions.json``);
* ``coco:ROOT`` — COCO captions format: ``ROOT/annotations/captions_val2017.json`` and the images in
  ``ROOT/val2017/`` (or ``ROOT/images/``); first caption per image;
* ``folder:PATH`` (or an existing folder path) — images with same-named ``.txt`` captions.

``limit`` keeps a deterministic sample of that many items (seeded shuffle of the sorted ids).
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TypeVar

import numpy as np
from PIL import Image

from diffinv.errors import DiffinvError
from diffinv.images import open_image
from diffinv.shapes.world import WORLDS

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
SHAPES_SEED = 2024  # seed of the Shapes benchmark split (fixed so every run scores the same scenes)
SHAPES_IMAGE_SIZE = 64
MAX_SHAPES_SAMPLES = 100_000  # scenes are drawn eagerly: a bound keeps a typo from filling the memory
SHAPES_LEVELS = {"shapes": "full", "shapes-partial": "partial"}
"""Shapes dataset kinds and the level of detail of their captions."""
T = TypeVar("T")


@dataclass(frozen=True)
class Sample:
    """One benchmark item. ``load()`` returns the RGB image; ``scene`` is the Shapes ground truth (or ``None``) and
    ``description`` its caption's :class:`~diffinv.shapes.descriptions.Description` (what it mentions, and below the
    full level the plan that tells it; ``None`` outside Shapes)."""

    id: str
    caption: str
    load: Callable[[], Image.Image]
    scene: object | None = None
    description: object | None = None


def deterministic_subset(samples: list[T], limit: int | None, seed: int) -> list[T]:
    """``limit`` items of ``samples`` (a seeded choice, in their order), or all of them when ``limit`` is ``None``."""
    if limit is None or limit >= len(samples):
        return samples
    if limit < 1:
        raise DiffinvError(f"--limit must be ≥ 1, got {limit}")
    chosen = sorted(random.Random(seed).sample(range(len(samples)), limit))
    return [samples[i] for i in chosen]


def shapes_samples(n: int, level: str = "full", world: str | None = None) -> list[Sample]:
    """``n`` held-out test-split Shapes scenes of ``world`` (default: the default world) with captions at ``level``
    (the canonical full caption, or a seeded ``partial`` one). Ids name the level and a non-default world, so
    records of different datasets never mix in one bench folder."""
    from diffinv import shapes
    from diffinv.shapes.descriptions import describe
    from diffinv.shapes.world import DEFAULT_WORLD

    world = world or DEFAULT_WORLD
    scenes = shapes.dataset("test", n, seed=SHAPES_SEED, world=world)
    prefix = "shapes" + ("" if level == "full" else f"-{level}") + ("" if world == DEFAULT_WORLD else f"-{world}")
    samples = []
    for i, scene in enumerate(scenes):
        rng = None if level == "full" else shapes.item_rng("test", SHAPES_SEED, i, "caption")
        description = describe(scene, level, rng)
        samples.append(
            Sample(
                id=f"{prefix}-{i:05d}",
                caption=description.text,
                load=lambda scene=scene: Image.fromarray(shapes.render(scene, SHAPES_IMAGE_SIZE)),
                scene=scene,
                description=description,
            )
        )
    return samples


def photo_samples() -> list[Sample]:
    """The scikit-image photos named in ``assets/photos/captions.json``."""
    import skimage.data

    captions = json.loads((resources.files("diffinv") / "assets" / "photos" / "captions.json").read_text())

    def loader(name: str) -> Callable[[], Image.Image]:
        def load() -> Image.Image:
            array = np.asarray(getattr(skimage.data, name)())
            return open_image(Image.fromarray(array))

        return load

    return [Sample(id=f"photo-{name}", caption=text, load=loader(name)) for name, text in sorted(captions.items())]


def folder_samples(folder: Path) -> list[Sample]:
    """Images in ``folder`` that have a same-named ``.txt`` caption beside them."""
    if not folder.is_dir():
        raise DiffinvError(f"{folder}: no such folder")
    samples = []
    for path in sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
        caption_file = path.with_suffix(".txt")
        if caption_file.is_file():
            caption = caption_file.read_text(encoding="utf-8").strip()
            samples.append(Sample(id=path.stem, caption=caption, load=lambda p=path: open_image(p)))
    if not samples:
        raise DiffinvError(f"{folder}: no images with same-named .txt captions")
    return samples


def coco_samples(root: Path) -> list[Sample]:
    """COCO captions (first caption per image, by annotation id)."""
    annotations = root / "annotations" / "captions_val2017.json"
    if not annotations.is_file():
        raise DiffinvError(f"{root}: expected annotations/captions_val2017.json")
    image_dir = next((root / d for d in ("val2017", "images") if (root / d).is_dir()), None)
    if image_dir is None:
        raise DiffinvError(f"{root}: expected the images in val2017/ or images/")
    try:
        data = json.loads(annotations.read_text(encoding="utf-8"))
        files = {img["id"]: img["file_name"] for img in data["images"]}
        first: dict[int, tuple[int, str]] = {}
        for ann in data["annotations"]:
            current = first.get(ann["image_id"])
            if current is None or ann["id"] < current[0]:
                first[ann["image_id"]] = (ann["id"], ann["caption"].strip())
    except (ValueError, KeyError, TypeError) as exc:
        raise DiffinvError(f"{annotations}: not a COCO captions file ({exc})") from None
    return [
        Sample(id=f"coco-{image_id}", caption=caption, load=lambda p=image_dir / files[image_id]: open_image(p))
        for image_id, (_, caption) in sorted(first.items())
        if image_id in files and (image_dir / files[image_id]).is_file()
    ]


def load_dataset(spec: str, *, limit: int | None = None, seed: int = 0) -> list[Sample]:
    """Parse a dataset spec (see the module docstring)."""
    kind, _, arg = spec.partition(":")
    if kind in SHAPES_LEVELS:
        count_text, _, world = arg.partition("@")
        try:
            count = int(count_text or 100)
        except ValueError:
            raise DiffinvError(f"shapes dataset size must be a number: {spec!r}") from None
        if not 1 <= count <= MAX_SHAPES_SAMPLES:
            raise DiffinvError(f"shapes dataset size must be 1 to {MAX_SHAPES_SAMPLES:,}: {spec!r}")
        if world and world not in WORLDS:
            raise DiffinvError(f"unknown Shapes world {world!r} in {spec!r}: use {', '.join(WORLDS)}")
        samples = shapes_samples(count, SHAPES_LEVELS[kind], world or None)
    elif kind == "photos" and not arg:
        samples = photo_samples()
    elif kind == "coco":
        samples = coco_samples(Path(arg))
    elif kind == "folder":
        samples = folder_samples(Path(arg))
    elif Path(spec).is_dir():
        samples = folder_samples(Path(spec))
    else:
        raise DiffinvError(
            f"unknown dataset {spec!r}: use shapes:N, shapes-partial:N, photos, coco:ROOT or folder:PATH"
        )
    return deterministic_subset(samples, limit, seed)
