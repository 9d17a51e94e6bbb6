"""Deterministic sampling of Shapes scenes for the train, test and held-out splits.

Splits:
    ``"train"``: objects use :data:`~diffinv.shapes.vocab.TRAIN_SHAPES` only (never a held-out shape) and
        never one of the :data:`~diffinv.shapes.vocab.NOVEL_COMBOS` colour x shape pairs.
    ``"test"``: the same distribution as ``"train"`` drawn from a disjoint seed stream. In addition, train
        and test scenes never coincide: the content of a scene (background and objects without jitter) is
        hashed into :data:`~diffinv.shapes.vocab.TEST_CONTENT_BUCKETS` buckets, bucket 0 is test-only and
        the other buckets are train-only (rejection sampling; see :func:`is_test_content`).
    ``"heldout_shape"``: exactly one object has a held-out shape (any colour allowed on the background);
        the other objects follow the train distribution.
    ``"novel_combo"``: exactly one object is a novel colour x shape combination; the other objects follow
        the train distribution.

Seeds: :func:`dataset` draws scene ``i`` of split ``s`` with its own generator
``numpy.random.default_rng(SeedSequence(seed, spawn_key=(SPLIT_IDS[s], i, PURPOSES["scene"])))`` (see
:func:`item_rng`). Different splits, indices or purposes give different spawn keys, hence independent,
non-overlapping streams, whatever the base seed; and ``dataset(s, n, seed)[:k] == dataset(s, k, seed)``.
"""

from __future__ import annotations

import hashlib
from typing import Final

import numpy as np

from diffinv.shapes.scene import Scene, ShapeObject
from diffinv.shapes.vocab import GRID, POSITIONS, TEST_CONTENT_BUCKETS
from diffinv.shapes.world import DEFAULT_WORLD, V2, World, get_world

SPLITS: Final[tuple[str, ...]] = ("train", "test", "heldout_shape", "novel_combo")
"""Names of the splits."""

SPLIT_IDS: Final = {name: i for i, name in enumerate(SPLITS)}
"""Spawn-key component of every split (never reorder: it would change every dataset)."""

PURPOSES: Final = {"scene": 0, "caption": 1, "strokes": 2}
"""Spawn-key component separating the random streams of one dataset item."""

_MAX_REJECTIONS: Final[int] = 10_000


def _check_split(split: str) -> None:
    if split not in SPLIT_IDS:
        raise ValueError(f"invalid split {split!r}; expected one of {', '.join(SPLITS)}")


def item_rng(split: str, seed: int, index: int, purpose: str = "scene") -> np.random.Generator:
    """Independent generator of item ``index`` of a dataset, for one ``purpose``.

    ``purpose="scene"`` is the stream :func:`dataset` samples scenes with; use ``"caption"`` and
    ``"strokes"`` for the caption and the stroke painting of the same item, e.g.
    ``caption(scene, item_rng("train", seed, i, "caption"))``.
    """
    _check_split(split)
    if purpose not in PURPOSES:
        raise ValueError(f"invalid purpose {purpose!r}; expected one of {', '.join(PURPOSES)}")
    if seed < 0 or index < 0:
        raise ValueError(f"seed and index must be non-negative, got seed={seed}, index={index}")
    sequence = np.random.SeedSequence(seed, spawn_key=(SPLIT_IDS[split], index, PURPOSES[purpose]))
    return np.random.default_rng(sequence)


def content_key(scene: Scene) -> str:
    """Canonical text of a scene's content: world, background and objects, ignoring jitter and drawing order (v2
    scenes, all solid, keep the key they had before worlds and fills existed)."""
    objects = sorted(
        (o.position, o.size, o.color, o.shape, *(() if o.fill == "solid" else (o.fill,))) for o in scene.objects
    )
    world = "" if scene.world == DEFAULT_WORLD else f"{scene.world}|"
    return world + scene.background + ";" + ";".join(",".join(o) for o in objects)


def is_test_content(scene: Scene) -> bool:
    """Whether a scene's content is reserved for the test split (stable hash, independent of Python)."""
    digest = hashlib.blake2b(content_key(scene).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % TEST_CONTENT_BUCKETS == 0


def is_train_object(obj: ShapeObject, world: World = V2) -> bool:
    """Whether an object may appear in training scenes of ``world`` (train shape, not a novel combination)."""
    return obj.shape in world.train_shapes and (obj.color, obj.shape) not in world.novel_combos


def _train_colors(shape: str, background: str, world: World) -> tuple[str, ...]:
    return tuple(c for c in world.allowed_colors[background] if (c, shape) not in world.novel_combos)


def _pick(rng: np.random.Generator, options: tuple[str, ...] | list[str]) -> str:
    return options[int(rng.integers(len(options)))]


def _draw_scene(rng: np.random.Generator, split: str, n_objects: int, jitter: bool, world: World) -> Scene:
    background = _pick(rng, world.backgrounds)
    cells = rng.choice(GRID * GRID, size=n_objects, replace=False)
    special = int(rng.integers(n_objects))  # the held-out / novel object, if any
    objects = []
    for i, cell in enumerate(cells):
        if split == "heldout_shape" and i == special:
            shape = _pick(rng, world.heldout_shapes)
            color = _pick(rng, world.allowed_colors[background])
        elif split == "novel_combo" and i == special:
            combos = [c for c in world.novel_combos if c[0] in world.allowed_colors[background]]
            color, shape = combos[int(rng.integers(len(combos)))]
        else:
            shape = _pick(rng, world.train_shapes)
            color = _pick(rng, _train_colors(shape, background, world))
        size = _pick(rng, world.sizes)
        dx, dy = rng.uniform(-1.0, 1.0, size=2) if jitter else (0.0, 0.0)
        fill = "solid"
        if len(world.fills) > 1 and size in world.fill_sizes:  # v2 draws nothing more: its scenes stay as they were
            fill = world.fills[
                int(rng.choice(len(world.fills), p=np.asarray(world.fill_probs) / sum(world.fill_probs)))
            ]
        objects.append(ShapeObject(shape, color, size, POSITIONS[int(cell)], (float(dx), float(dy)), fill))
    return Scene(background, tuple(objects), world.name)


def sample_scene(
    rng: np.random.Generator | int,
    split: str = "train",
    n_objects: int | None = None,
    jitter: bool = True,
    world: str = DEFAULT_WORLD,
) -> Scene:
    """Draw one random scene of ``split`` of the Shapes world ``world``.

    Args:
        rng: Generator (advanced in place) or integer seed.
        split: One of :data:`SPLITS` (see the module docstring for their distributions).
        n_objects: Number of objects, from the world's minimum to its maximum (1 to 3 in v2, 1 to 4 in v3);
            ``None`` draws it uniformly.
        jitter: Whether objects get a random offset (otherwise they are centred in their cells).
        world: ``"v2"`` or ``"v3"`` (:mod:`diffinv.shapes.world`).
    """
    _check_split(split)
    w = get_world(world)
    rng = np.random.default_rng(rng)
    if n_objects is not None and not w.min_objects <= n_objects <= w.max_objects:
        raise ValueError(f"n_objects must be in [{w.min_objects}, {w.max_objects}] or None, got {n_objects}")
    for _ in range(_MAX_REJECTIONS):
        n = n_objects if n_objects is not None else int(rng.integers(w.min_objects, w.max_objects + 1))
        scene = _draw_scene(rng, split, n, jitter, w)
        if split not in ("train", "test") or is_test_content(scene) == (split == "test"):
            return scene
    raise RuntimeError(f"could not draw a {split!r} scene in {_MAX_REJECTIONS} attempts")  # pragma: no cover


def dataset(split: str, n: int, seed: int = 0, jitter: bool = True, world: str = DEFAULT_WORLD) -> list[Scene]:
    """``n`` scenes of ``split`` of ``world``, deterministic in ``(split, seed, world)``; scene ``i`` uses
    ``item_rng(split, seed, i)`` so that datasets of different lengths share their prefix."""
    _check_split(split)
    if n < 0:
        raise ValueError(f"n must be non-negative, got {n}")
    return [sample_scene(item_rng(split, seed, i), split, jitter=jitter, world=world) for i in range(n)]
