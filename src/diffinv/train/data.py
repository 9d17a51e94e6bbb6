"""On-the-fly training data of the miniature Stable Diffusion ("mini"): Shapes renders with captions, and random
crops of the real photos bundled with scikit-image.

Everything is drawn from a :class:`numpy.random.Generator` the caller owns, so a batch depends only on the seed
the trainer derives for it (see :func:`diffinv.loop.common.batch_rng`) and a resumed run sees exactly the data of
an uninterrupted one.

* Shapes: scenes come from :func:`diffinv.shapes.sample_scene` on the ``train`` split only (never the held-out
  shape nor a novel colour x shape combination), with a configurable distribution of the object count; captions
  and of colours and sizes (rejection sampling on the train split); captions
  are random variants of :func:`diffinv.shapes.caption`, replaced by the empty string with probability
  ``empty_prob`` (classifier-free guidance).
* Photos: :data:`TRAIN_PHOTOS` feed the VAE (random-resized square crops, random horizontal flips);
  :data:`HELDOUT_PHOTOS` are never trained on and give the photo reconstruction score (:func:`eval_photo_crops`).

Pixel tensors are ``(B, 3, S, S)`` float32 in ``[-1, 1]`` (the VAE's range).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Final

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from diffinv.errors import DiffinvError
from diffinv.shapes.captions import caption, locate
from diffinv.shapes.descriptions import LEVELS, describe
from diffinv.shapes.render import render
from diffinv.shapes.scene import Scene
from diffinv.shapes.splits import is_train_object, sample_scene
from diffinv.shapes.vocab import BACKGROUNDS, COLORS, POSITIONS, SIZES
from diffinv.shapes.world import DEFAULT_WORLD, World, get_world
from diffinv.train.config import CropConfig

TRAIN_PHOTOS: Final[tuple[str, ...]] = (
    "rocket",
    "hubble_deep_field",
    "immunohistochemistry",
    "retina",
    "colorwheel",
    "logo",
    "stereo_motorcycle",
    "brick",
    "cell",
    "clock",
    "coins",
    "grass",
    "gravel",
    "moon",
    "page",
    "text",
    "microaneurysms",
    "horse",
)
"""scikit-image photos the VAE trains on (grey ones are replicated to RGB)."""

HELDOUT_PHOTOS: Final[tuple[str, ...]] = ("astronaut", "chelsea", "coffee", "camera")
"""scikit-image photos kept out of training (``cat`` is the same picture as ``chelsea`` and is not used at all)."""

PHOTO_SHORT_SIDE: Final[int] = 256
"""Photos are stored downscaled so that their short side is at most this many pixels (crops stay sharp at 64 px)."""


def to_tensor(images: Sequence[np.ndarray]) -> Tensor:
    """uint8 ``(S, S, 3)`` arrays → ``(B, 3, S, S)`` float32 in ``[-1, 1]``."""
    return torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def to_uint8(pixels: Tensor) -> np.ndarray:
    """``(B, 3, S, S)`` in ``[-1, 1]`` → uint8 ``(B, S, S, 3)``."""
    scaled = ((pixels.detach().float().clamp(-1, 1) + 1) * 127.5).round()
    return scaled.permute(0, 2, 3, 1).to(torch.uint8).cpu().numpy()


# --------------------------------------------------------------------------------------------------------
# Shapes
# --------------------------------------------------------------------------------------------------------


def _named_weights(weights: Sequence[tuple[str, float]], names: Sequence[str], what: str) -> dict[str, float]:
    """``{name: weight}`` over ``names``: the given ``(name, weight)`` pairs, 1 for the others."""
    table = dict.fromkeys(names, 1.0)
    for name, weight in weights:
        if name not in table or not weight > 0:
            raise ValueError(f"{what} weights need known names and positive weights, got {name!r}: {weight}")
        table[name] = float(weight)
    return table


def sample_train_scenes(
    rng: np.random.Generator,
    n: int,
    object_probs: Sequence[float],
    color_weights: Sequence[tuple[str, float]] = (),
    size_weights: Sequence[tuple[str, float]] = (),
    world: str = DEFAULT_WORLD,
) -> list[Scene]:
    """``n`` train-split scenes of ``world``; ``object_probs[k]`` is the probability of ``k + 1`` objects
    (normalised).

    ``color_weights`` and ``size_weights`` (``(name, weight)`` pairs, unnamed colours and sizes weigh 1) make
    scenes with those objects more frequent: a scene of the train split is kept with probability proportional to
    the mean over its objects of colour weight x size weight (rejection sampling, so every scene is still a train
    scene and the object count still follows ``object_probs``). Without weights the draws are exactly those of
    the unweighted sampler.
    """
    most = get_world(world).max_objects
    probs = np.asarray(object_probs, dtype=np.float64)
    if probs.ndim != 1 or not 1 <= len(probs) <= most or (probs < 0).any() or probs.sum() <= 0:
        raise ValueError(f"object_probs must give 1 to {most} non-negative weights, got {list(object_probs)}")
    colors = _named_weights(color_weights, COLORS, "colour")
    sizes = _named_weights(size_weights, SIZES, "size")
    counts = rng.choice(len(probs), size=n, p=probs / probs.sum()) + 1
    if not color_weights and not size_weights:
        scenes = [sample_scene(rng, "train", n_objects=int(k), world=world) for k in counts]
    else:
        top = max(colors.values()) * max(sizes.values())
        scenes = []
        for k in counts:
            while True:
                scene = sample_scene(rng, "train", n_objects=int(k), world=world)
                weight = float(np.mean([colors[o.color] * sizes[o.size] for o in scene.objects]))
                if rng.random() * top < weight:
                    break
            scenes.append(scene)
    # the train split's guarantee
    assert all(is_train_object(o, get_world(world)) for s in scenes for o in s.objects)
    return scenes


def render_scenes(scenes: Sequence[Scene], size: int) -> Tensor:
    """Renders ``(B, 3, size, size)`` in ``[-1, 1]``."""
    return to_tensor([render(s, size) for s in scenes])


def sample_captions(
    scenes: Sequence[Scene],
    rng: np.random.Generator,
    empty_prob: float,
    levels: Sequence[tuple[str, float]] = (("full", 1.0),),
) -> list[str]:
    """A random caption per scene, or ``""`` with probability ``empty_prob``: at a level of detail
    (:mod:`diffinv.shapes.descriptions`) drawn from ``levels`` (``(level, weight)`` pairs; full captions only draw
    nothing more, so v2's captions are what they were)."""
    drop = rng.random(len(scenes)) < empty_prob
    if len(levels) == 1 and levels[0][0] == "full":
        return ["" if d else caption(s, rng) for s, d in zip(scenes, drop, strict=True)]
    names = [name for name, _ in levels]
    if any(name not in LEVELS for name in names):
        raise ValueError(f"caption levels must be among {', '.join(LEVELS)}, got {names}")
    weights = np.asarray([w for _, w in levels], dtype=np.float64)
    picks = rng.choice(len(names), size=len(scenes), p=weights / weights.sum())
    return ["" if d else describe(s, names[int(k)], rng).text for s, d, k in zip(scenes, drop, picks, strict=True)]


IGNORE: Final[int] = -100
"""Target of the positions a head is not trained on (``torch.nn.functional.cross_entropy``'s ignore index)."""


def caption_heads(world: World) -> dict[str, int]:
    """Output sizes of the caption-parsing heads of the text pretraining for ``world`` (cell heads: one class set
    per grid cell; ``cell_shape`` has an extra "empty" class 0; a ``fill`` head where the world has fills)."""
    heads = {
        "size": len(SIZES),
        "color": len(COLORS),
        "shape": len(world.shapes),
        "position": len(POSITIONS),
        "background": len(BACKGROUNDS),
        "cell_shape": len(POSITIONS) * (len(world.shapes) + 1),
        "cell_color": len(POSITIONS) * len(COLORS),
    }
    return {**heads, "fill": len(world.fills)} if len(world.fills) > 1 else heads


def caption_targets(texts: Sequence[str], length: int, world: str = DEFAULT_WORLD) -> dict[str, Tensor]:
    """Per-token parsing targets of captions, for pretraining a causal text encoder.

    Position ``p`` of a sequence is BOS (0), then the caption's words (:func:`~diffinv.shapes.captions.locate`),
    then EOS padding up to ``length``. A position is trained only on what it can see (the encoder is causal):

    * ``size``/``color``/``shape`` ``(B, L)``: from that attribute's word to the end of its object's phrase;
    * ``fill`` ``(B, L)`` (a world with fills): from the shape's word (the fill word, or its absence, is known
      there) to the end of the phrase;
    * ``position`` ``(B, L)``: at the last word of the object's phrase;
    * ``background`` ``(B, L)``: from the word ``background`` on, EOS padding included;
    * ``cell_shape``/``cell_color`` ``(B, L, 9)``: at the EOS positions, the shape (``0`` = empty cell, else
      ``1 + SHAPES`` index) and colour of the object in each grid cell.

    Everything else is :data:`IGNORE`. Raises ValueError for a text that is not a caption or does not fit.
    """
    spec = get_world(world)
    cells = len(POSITIONS)
    out = {
        name: torch.full((len(texts), length, cells) if name.startswith("cell") else (len(texts), length), IGNORE)
        for name in caption_heads(spec)
    }
    for b, text in enumerate(texts):
        layout = locate(text, world)
        end = len(layout.words) + 1  # first EOS position
        if end >= length:
            raise ValueError(f"caption of {len(layout.words)} words does not fit {length} positions: {text!r}")
        for mention in layout.objects:
            obj, last = mention.object, mention.last + 1
            values = {
                "size": SIZES.index(obj.size),
                "color": COLORS.index(obj.color),
                "shape": spec.shapes.index(obj.shape),
            }
            for name, value in values.items():
                out[name][b, mention.first[name] + 1 : last + 1] = value
            if "fill" in out:
                out["fill"][b, mention.first["shape"] + 1 : last + 1] = spec.fills.index(obj.fill)
            out["position"][b, last] = POSITIONS.index(obj.position)
        out["background"][b, layout.background_word + 1 :] = BACKGROUNDS.index(layout.background)
        out["cell_shape"][b, end:] = 0
        for mention in layout.objects:
            cell = POSITIONS.index(mention.object.position)
            out["cell_shape"][b, end:, cell] = 1 + spec.shapes.index(mention.object.shape)
            out["cell_color"][b, end:, cell] = COLORS.index(mention.object.color)
    return out


# --------------------------------------------------------------------------------------------------------
# Photos
# --------------------------------------------------------------------------------------------------------


def _load_skimage(name: str) -> np.ndarray:
    try:
        import skimage.data
    except ImportError:  # pragma: no cover - scikit-image is a dev dependency
        raise DiffinvError("training the mini model needs scikit-image (pip install 'diffinv[dev]')") from None
    image = getattr(skimage.data, name)()
    if name == "stereo_motorcycle":
        image = image[0]
    image = np.asarray(image)
    if image.dtype == bool:
        image = image.astype(np.uint8) * 255
    if image.dtype != np.uint8:
        image = np.clip(image * (255.0 if image.max() <= 1.0 else 1.0), 0, 255).astype(np.uint8)
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    if image.shape[2] == 4:  # RGBA (the logo): composite on white
        alpha = image[..., 3:].astype(np.float32) / 255.0
        image = (image[..., :3] * alpha + 255.0 * (1.0 - alpha)).round().astype(np.uint8)
    return np.ascontiguousarray(image[..., :3])


@lru_cache(maxsize=64)
def load_photo(name: str, short_side: int = PHOTO_SHORT_SIDE) -> np.ndarray:
    """A scikit-image photo as uint8 ``(H, W, 3)``, downscaled (Lanczos) so ``min(H, W) <= short_side``."""
    image = _load_skimage(name)
    h, w = image.shape[:2]
    scale = short_side / min(h, w)
    if scale < 1.0:
        size = (max(1, round(w * scale)), max(1, round(h * scale)))
        image = np.asarray(Image.fromarray(image).resize(size, Image.Resampling.LANCZOS))
    return image


def random_photo_crops(
    rng: np.random.Generator, n: int, size: int, names: Sequence[str] = TRAIN_PHOTOS, config: CropConfig | None = None
) -> Tensor:
    """``n`` random square crops of random photos of ``names``, resized to ``size``: ``(n, 3, size, size)``.

    The crop side is log-uniform in ``[min_scale, 1]`` × the short side (at least ``size / 2`` pixels).
    """
    config = config or CropConfig()
    crops = []
    for _ in range(n):
        photo = load_photo(names[int(rng.integers(len(names)))])
        h, w = photo.shape[:2]
        short = min(h, w)
        low = max(config.min_scale * short, min(short, size / 2))
        side = int(round(np.exp(rng.uniform(np.log(low), np.log(short)))))
        y, x = int(rng.integers(h - side + 1)), int(rng.integers(w - side + 1))
        crop = Image.fromarray(photo[y : y + side, x : x + side])
        crop = crop.resize((size, size), Image.Resampling.BICUBIC if side < size else Image.Resampling.LANCZOS)
        array = np.asarray(crop)
        if rng.random() < config.flip_prob:
            array = array[:, ::-1]
        crops.append(np.ascontiguousarray(array))
    return to_tensor(crops)


def eval_photo_crops(size: int, names: Sequence[str] = HELDOUT_PHOTOS) -> Tensor:
    """Deterministic evaluation views of ``names``: per photo, the whole centre square and its four corner
    quarters (side = half the short side), resized to ``size``: ``(5 * len(names), 3, size, size)``."""
    views = []
    for name in names:
        photo = load_photo(name)
        h, w = photo.shape[:2]
        short = min(h, w)
        y0, x0 = (h - short) // 2, (w - short) // 2
        half = short // 2
        boxes = [(y0, x0, short)] + [(y0 + dy, x0 + dx, half) for dy in (0, half) for dx in (0, half)]
        for y, x, side in boxes:
            crop = Image.fromarray(photo[y : y + side, x : x + side])
            views.append(np.asarray(crop.resize((size, size), Image.Resampling.LANCZOS)))
    return to_tensor(views)


def vae_batch(
    rng: np.random.Generator,
    n: int,
    size: int,
    photo_fraction: float,
    object_probs: Sequence[float],
    crop: CropConfig | None = None,
    world: str = DEFAULT_WORLD,
) -> Tensor:
    """A VAE training batch ``(n, 3, size, size)``: Shapes renders of ``world`` mixed with photo crops
    (``photo_fraction``), in random order."""
    n_photos = int(rng.binomial(n, photo_fraction))
    shapes = sample_train_scenes(rng, n - n_photos, object_probs, world=world) if n > n_photos else []
    parts = [render_scenes(shapes, size)] if shapes else []
    if n_photos:
        parts.append(random_photo_crops(rng, n_photos, size, config=crop))
    batch = torch.cat(parts)
    return batch[torch.from_numpy(rng.permutation(n))]
