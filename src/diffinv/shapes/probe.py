"""The attribute probe: a small CNN that reads a Shapes scene back from pixels.

Objects of a scene sit in distinct cells of the 3 x 3 grid, and every object's bounding box lies inside
its cell, so the probe reads the image cell by cell: a crop slightly larger than each cell goes through one
shared CNN (translation-equivariant, so every training image teaches it up to nine examples) that predicts

* occupancy and shape, an 11-way class: ``"empty"`` or one of :data:`~diffinv.shapes.vocab.SHAPES`
  (held-out shapes included: the probe is trained on every split so it can score them);
* colour (10-way, meaningful for occupied cells only);
* size (2-way, occupied cells only);
* background (7-way: every crop shows mostly background; the image's logits are the mean of its cells').

Positions come from the cells. :func:`decode_scenes` turns the logits into valid scenes (1 to 3 objects,
colours contrasting with the background), objects in canonical (row-major) order, without jitter.

Inputs are ``(B, 3, 64, 64)`` float RGB in ``[0, 1]``; :func:`to_probe_input` converts PIL images, uint8
arrays and tensors of other sizes (bilinear, antialiased). The shipped weights live in
``diffinv/assets/probe/`` (``probe.safetensors`` + ``config.json``) and are trained by
``python -m diffinv.train.probe``.

Example::

    from diffinv.shapes import dataset, render
    from diffinv.shapes.probe import read_scenes, scene_agreement

    truth = dataset("test", 4, seed=0)
    pred = read_scenes([render(s) for s in truth])
    scores = [scene_agreement(p, t) for p, t in zip(pred, truth)]  # {"background": 1.0, "shape": 1.0, ...}
"""

from __future__ import annotations

import json
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, NamedTuple, TextIO

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from diffinv.config import Config
from diffinv.errors import DiffinvError, first_line
from diffinv.io import atomic_write
from diffinv.shapes.scene import Scene, ShapeObject
from diffinv.shapes.vocab import BACKGROUNDS, COLORS, GRID, POSITIONS, SIZES
from diffinv.shapes.world import DEFAULT_WORLD, World, get_world

EMPTY: Final[str] = "empty"
"""Class of a cell without an object."""


def slot_classes(world: World) -> tuple[str, ...]:
    """Classes of the occupancy-and-shape head of a probe for ``world``: 0 an empty cell, ``1 + i`` its i-th shape."""
    return (EMPTY, *world.shapes)


SLOT_CLASSES: Final[tuple[str, ...]] = slot_classes(get_world(DEFAULT_WORLD))
"""The slot classes of world v2 (the shipped probe's)."""

NUM_CELLS: Final[int] = GRID * GRID
"""Number of object slots (grid cells), in row-major order like :data:`~diffinv.shapes.vocab.POSITIONS`."""

IGNORE_INDEX: Final[int] = -100
"""Target of the colour and size heads for empty cells (ignored by the loss)."""

WEIGHTS_FILE: Final[str] = "probe.safetensors"
CONFIG_FILE: Final[str] = "config.json"
DEFAULT_PATH: Final[Path] = Path(__file__).resolve().parent.parent / "assets" / "probe"
"""Folder of the shipped probe (world v2's)."""

SHIPPED: Final[Mapping[str, Path]] = MappingProxyType({"v2": DEFAULT_PATH, "v3": DEFAULT_PATH.with_name("probe-v3")})
"""Where the probe shipped for each world lies (a world's folder may not exist yet: v3's is being trained)."""


def vocabulary(world: World) -> dict[str, tuple[str, ...]]:
    """Class lists the heads of a probe for ``world`` are indexed by; saved with the weights and checked on load
    (``fills`` only for a world with fills, so v2 probes keep the record they were saved with)."""
    classes = {
        "slot_classes": slot_classes(world),
        "colors": world.colors,
        "sizes": world.sizes,
        "backgrounds": world.backgrounds,
        "positions": POSITIONS,
    }
    return {**classes, "fills": world.fills} if len(world.fills) > 1 else classes


# --------------------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ProbeConfig(Config):
    """Architecture of :class:`ShapesProbe` (training hyperparameters live in ``diffinv.train.probe``); stored in a
    probe folder's ``config.json`` (:meth:`~diffinv.config.Config.to_dict`; a record without ``world`` predates
    worlds and reads as v2, the default)."""

    image_size: int = 64
    """Side of the (square) input the probe reads; other sizes are resized to it."""
    crop_size: int = 30
    """Side of the square crop read around every cell (a cell is ``image_size / 3`` ≈ 21.3 pixels; the
    margin tolerates objects slightly off their cell, e.g. in generated images)."""
    channels: tuple[int, ...] = (16, 32, 64, 64)
    """Output channels of the 3 x 3 convolutions of the cell CNN (each followed by BatchNorm and ReLU)."""
    pool_after: tuple[int, ...] = (1, 2)
    """Indices of the convolutions followed by a 2 x 2 max-pool."""
    hidden: int = 128
    """Width of the fully connected layer between the flattened cell features and the heads."""
    world: str = DEFAULT_WORLD
    """The Shapes world whose scenes the probe reads (:mod:`diffinv.shapes.world`): its shapes, fills (a fill head
    where the world has several) and number of objects."""

    def __post_init__(self) -> None:
        get_world(self.world)  # ValueError naming the worlds
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        object.__setattr__(self, "pool_after", tuple(int(i) for i in self.pool_after))
        positive = ("image_size", "crop_size", "hidden")
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"ProbeConfig.{name} must be a positive integer, got {value!r}")
        if not self.channels or any(c < 1 for c in self.channels):
            raise ValueError(f"ProbeConfig.channels must be positive integers, got {self.channels}")
        if any(not 0 <= i < len(self.channels) for i in self.pool_after):
            raise ValueError(f"ProbeConfig.pool_after indices must be < {len(self.channels)}, got {self.pool_after}")
        if self.crop_size < math.ceil(self.image_size / GRID):
            raise ValueError(f"ProbeConfig.crop_size must cover a cell ({self.image_size / GRID:.1f} px)")
        if self.feature_side < 1:
            raise ValueError(f"ProbeConfig: a {self.crop_size}-pixel crop is pooled away by {self.pool_after}")

    @property
    def feature_side(self) -> int:
        """Side of the cell CNN's last feature map."""
        side = self.crop_size
        for _ in self.pool_after:
            side //= 2
        return side

    @property
    def world_spec(self) -> World:
        """The :class:`~diffinv.shapes.world.World` named by :attr:`world`."""
        return get_world(self.world)


# --------------------------------------------------------------------------------------------------------
# Outputs and targets
# --------------------------------------------------------------------------------------------------------


class ProbeOutput(NamedTuple):
    """Logits of the probe for a batch of ``B`` images (cells in row-major order)."""

    shape: Tensor
    """``(B, 9, 11)`` occupancy-and-shape logits over :data:`SLOT_CLASSES`."""
    color: Tensor
    """``(B, 9, 10)`` colour logits over :data:`~diffinv.shapes.vocab.COLORS`."""
    size: Tensor
    """``(B, 9, 2)`` size logits over :data:`~diffinv.shapes.vocab.SIZES`."""
    background: Tensor
    """``(B, 7)`` background logits over :data:`~diffinv.shapes.vocab.BACKGROUNDS` (mean of the cells')."""
    fill: Tensor | None = None
    """``(B, 9, F)`` fill logits over the world's fills; ``None`` for a world with one fill (v2)."""


class CellLogits(NamedTuple):
    """Logits of the probe for ``N`` cell crops (what the shared cell CNN predicts from one crop)."""

    shape: Tensor
    """``(N, 11)`` over :data:`SLOT_CLASSES`."""
    color: Tensor
    """``(N, 10)`` over ``COLORS``."""
    size: Tensor
    """``(N, 2)`` over ``SIZES``."""
    background: Tensor
    """``(N, 7)`` over ``BACKGROUNDS`` (every crop shows some background)."""
    fill: Tensor | None = None
    """``(N, F)`` over the world's fills; ``None`` for a world with one fill."""


class CellTargets(NamedTuple):
    """Class indices ``N`` cell crops should be read as (int64 tensors of shape ``(N,)``)."""

    shape: Tensor
    """Index into :data:`SLOT_CLASSES` (0 = empty cell)."""
    color: Tensor
    """Index into ``COLORS``, :data:`IGNORE_INDEX` for empty cells."""
    size: Tensor
    """Index into ``SIZES``, :data:`IGNORE_INDEX` for empty cells."""
    background: Tensor
    """Index into ``BACKGROUNDS``."""
    fill: Tensor | None = None
    """Index into the world's fills, :data:`IGNORE_INDEX` for empty cells; ``None`` for a world with one fill."""

    def select(self, index: Tensor) -> CellTargets:
        """Targets of a subset of the cells (``index``: a boolean mask or integer indices over ``N``)."""
        return CellTargets(*(None if t is None else t[index] for t in self))


def encode_targets(scenes: Sequence[Scene], world: World | None = None) -> CellTargets:
    """Targets of the ``N = 9 * len(scenes)`` cells of ``scenes`` (cells of one scene consecutive, in
    row-major order, like :func:`cell_crops`) for a probe of ``world`` (default: v2); jitter and drawing order
    are ignored."""
    world = world or get_world(DEFAULT_WORLD)
    classes = slot_classes(world)
    n = len(scenes)
    shape = torch.zeros(n, NUM_CELLS, dtype=torch.long)
    color, size, fill = (torch.full((n, NUM_CELLS), IGNORE_INDEX, dtype=torch.long) for _ in range(3))
    background = torch.empty(n, NUM_CELLS, dtype=torch.long)
    for i, scene in enumerate(scenes):
        background[i] = BACKGROUNDS.index(scene.background)
        for obj in scene.objects:
            cell = POSITIONS.index(obj.position)
            shape[i, cell] = classes.index(obj.shape)
            color[i, cell] = COLORS.index(obj.color)
            size[i, cell] = SIZES.index(obj.size)
            fill[i, cell] = world.fills.index(obj.fill)
    fills = fill.flatten() if len(world.fills) > 1 else None
    return CellTargets(shape.flatten(), color.flatten(), size.flatten(), background.flatten(), fills)


def probe_loss(
    logits: CellLogits, targets: CellTargets, label_smoothing: float = 0.0
) -> tuple[Tensor, dict[str, float]]:
    """Sum of the cross-entropies of the heads over ``N`` cells (colour, size and fill on occupied cells).

    Each term is a mean over its own items (all cells, or occupied cells), so the terms have comparable
    scales. Returns the scalar loss and the detached value of every term (keys ``shape``, ``color``,
    ``size``, ``background``, and ``fill`` for a world with fills).
    """

    def ce(logits: Tensor, target: Tensor) -> Tensor:
        if not bool((target != IGNORE_INDEX).any()):
            return logits.sum() * 0.0
        return F.cross_entropy(logits, target, ignore_index=IGNORE_INDEX, label_smoothing=label_smoothing)

    terms = {
        name: ce(getattr(logits, name), getattr(targets, name))
        for name in CellLogits._fields
        if getattr(logits, name) is not None
    }
    total = torch.stack(list(terms.values())).sum()
    return total, {k: float(v.detach()) for k, v in terms.items()}


# --------------------------------------------------------------------------------------------------------
# Model
# --------------------------------------------------------------------------------------------------------


def cell_crop_starts(image_size: int, crop_size: int) -> tuple[int, ...]:
    """Top/left pixel of the crop around each grid row/column (may be negative: the image is padded)."""
    return tuple(round((i + 0.5) * image_size / GRID - crop_size / 2) for i in range(GRID))


def cell_crops(images: Tensor, crop_size: int) -> Tensor:
    """Crops of side ``crop_size`` centred on the grid cells, with edge replication outside the image.

    Args:
        images: ``(B, C, S, S)``.
        crop_size: Side of every crop.

    Returns:
        ``(B * 9, C, crop_size, crop_size)``, cells of one image consecutive, in row-major order.
    """
    size = images.shape[-1]
    starts = cell_crop_starts(size, crop_size)
    pad = max(0, -min(starts), max(starts) + crop_size - size)
    padded = F.pad(images, (pad, pad, pad, pad), mode="replicate") if pad else images
    crops = [
        padded[:, :, top + pad : top + pad + crop_size, left + pad : left + pad + crop_size]
        for top in starts
        for left in starts
    ]
    return torch.stack(crops, dim=1).reshape(-1, images.shape[1], crop_size, crop_size)


class ShapesProbe(nn.Module):
    """Reads a Shapes scene from an image: per-cell shape / colour / size logits and background logits.

    ``forward`` takes ``(B, 3, S, S)`` float RGB in ``[0, 1]`` with ``S = config.image_size`` and returns a
    :class:`ProbeOutput`. Use :func:`read_scenes` to go from images to scenes.
    """

    def __init__(self, config: ProbeConfig | None = None) -> None:
        super().__init__()
        self.config = config = config or ProbeConfig()
        layers: list[nn.Module] = []
        in_channels = 3
        for i, out_channels in enumerate(config.channels):
            layers += [
                nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
                nn.BatchNorm2d(out_channels),
                nn.ReLU(inplace=True),
            ]
            if i in config.pool_after:
                layers.append(nn.MaxPool2d(2))
            in_channels = out_channels
        self.cell_features = nn.Sequential(*layers)
        self.cell_mlp = nn.Sequential(
            nn.Flatten(),
            nn.Linear(in_channels * config.feature_side**2, config.hidden),
            nn.ReLU(inplace=True),
        )
        self.shape_head = nn.Linear(config.hidden, len(slot_classes(config.world_spec)))
        self.color_head = nn.Linear(config.hidden, len(COLORS))
        self.size_head = nn.Linear(config.hidden, len(SIZES))
        self.background_head = nn.Linear(config.hidden, len(BACKGROUNDS))
        fills = config.world_spec.fills
        self.fill_head = nn.Linear(config.hidden, len(fills)) if len(fills) > 1 else None

    def forward_cells(self, crops: Tensor) -> CellLogits:
        """``crops``: ``(N, 3, crop_size, crop_size)`` float in ``[0, 1]`` (see :meth:`crops`) → :class:`CellLogits`."""
        features = self.cell_mlp(self.cell_features(crops * 2.0 - 1.0))  # (N, hidden)
        return CellLogits(
            self.shape_head(features),
            self.color_head(features),
            self.size_head(features),
            self.background_head(features),
            None if self.fill_head is None else self.fill_head(features),
        )

    def crops(self, images: Tensor) -> Tensor:
        """``images``: ``(B, 3, S, S)`` float in ``[0, 1]`` → ``(B * 9, 3, crop_size, crop_size)`` cell crops."""
        size = self.config.image_size
        if images.ndim != 4 or images.shape[1] != 3 or images.shape[2:] != (size, size):
            raise DiffinvError(f"the probe expects a (B, 3, {size}, {size}) tensor, got {tuple(images.shape)}")
        return cell_crops(images, self.config.crop_size)

    def forward(self, images: Tensor) -> ProbeOutput:
        """``images``: ``(B, 3, S, S)`` float in ``[0, 1]`` → :class:`ProbeOutput` (logits)."""
        batch = images.shape[0]
        cells = self.forward_cells(self.crops(images))
        return ProbeOutput(
            shape=cells.shape.view(batch, NUM_CELLS, -1),
            color=cells.color.view(batch, NUM_CELLS, -1),
            size=cells.size.view(batch, NUM_CELLS, -1),
            background=cells.background.view(batch, NUM_CELLS, -1).mean(dim=1),
            fill=None if cells.fill is None else cells.fill.view(batch, NUM_CELLS, -1),
        )

    def num_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, device: str | torch.device = "cpu") -> ShapesProbe:
        """Load a probe saved by :meth:`save_pretrained` (default: the shipped one), in eval mode.

        ``path`` is a folder holding ``probe.safetensors`` and ``config.json``. Raises DiffinvError if the
        files are missing or were saved for another vocabulary.
        """
        folder = Path(path) if path is not None else DEFAULT_PATH
        weights, config_path = folder / WEIGHTS_FILE, folder / CONFIG_FILE
        for file in (weights, config_path):
            if not file.is_file():
                raise DiffinvError(f"{file}: no such file (a probe folder holds {WEIGHTS_FILE} and {CONFIG_FILE})")
        try:
            meta = json.loads(config_path.read_text())
            config = ProbeConfig.from_dict(meta["config"])
        except (ValueError, KeyError, TypeError) as exc:
            raise DiffinvError(f"{config_path}: not a probe config ({exc})") from None
        saved = {k: tuple(v) for k, v in meta.get("vocabulary", {}).items()}
        if saved != vocabulary(config.world_spec):
            raise DiffinvError(f"{config_path}: the probe was trained for another Shapes vocabulary")
        probe = cls(config)
        try:
            probe.load_state_dict(load_file(weights, device=str(device)))
        except (RuntimeError, OSError) as exc:
            raise DiffinvError(f"{weights}: weights do not match {config_path} ({first_line(exc)})") from None
        return probe.to(device).eval()

    def save_pretrained(self, directory: str | Path, metadata: Mapping[str, Any] | None = None) -> Path:
        """Write ``probe.safetensors`` and ``config.json`` (plus optional JSON ``metadata``) into ``directory``."""
        folder = Path(directory)
        folder.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items()}
        atomic_write(folder / WEIGHTS_FILE, lambda tmp: save_file(state, str(tmp), metadata={"format": "pt"}))
        meta = {
            "config": self.config.to_dict(),
            "vocabulary": {k: list(v) for k, v in vocabulary(self.config.world_spec).items()},
            **({"metadata": dict(metadata)} if metadata else {}),
        }
        atomic_write(folder / CONFIG_FILE, lambda tmp: tmp.write_text(json.dumps(meta, indent=2) + "\n"))
        return folder


class ProbeFeatures(nn.Module):
    """Image-level features of a probe, for distances between sets of images (FID and KID on Shapes,
    :func:`diffinv.metrics.feature_distances`): per image, the mean and the maximum over its nine cells of the cell
    network's hidden features, ``(B, 2 * hidden)``. Takes ``(B, 3, H, W)`` floats in ``[0, 1]`` of any size (resized
    to the probe's input). Unlike the probe's confidence, which saturates near 1 for anything render-like, these
    features move with every change of shape, colour, sharpness or texture."""

    def __init__(self, probe: ShapesProbe) -> None:
        super().__init__()
        self.probe = probe.eval()
        self.num_features = 2 * probe.config.hidden

    @torch.no_grad()
    def forward(self, images: Tensor) -> Tensor:
        pixels = _resize(images.float().clamp(0.0, 1.0), self.probe.config.image_size)
        crops = self.probe.crops(pixels.to(next(self.probe.parameters()).device))
        cells = self.probe.cell_mlp(self.probe.cell_features(crops * 2.0 - 1.0)).view(pixels.shape[0], NUM_CELLS, -1)
        return torch.cat([cells.mean(dim=1), cells.amax(dim=1)], dim=-1).cpu()


def probe_for(world: str, path: str | Path | None = None) -> ShapesProbe:
    """The probe in ``path``, else the one shipped for ``world`` (:data:`SHIPPED`, loaded once), after checking that
    it reads ``world``'s scenes; DiffinvError when none is shipped for the world or the probe reads another's."""
    if path is None:
        if not (SHIPPED.get(world, DEFAULT_PATH) / CONFIG_FILE).is_file():
            raise DiffinvError(
                f"no probe is shipped for world {world} yet; pass a probe folder trained for it "
                f"(python -m diffinv.train.probe)"
            )
        probe = _shipped_probe(world)
    else:
        probe = ShapesProbe.from_pretrained(path)
    if probe.config.world != world:
        raise DiffinvError(
            f"{path} reads world {probe.config.world}'s scenes; scoring world {world} needs a probe for it "
            f"(e.g. one trained by python -m diffinv.train.probe)"
        )
    return probe


@lru_cache(maxsize=len(SHIPPED))
def _shipped_probe(world: str) -> ShapesProbe:
    return ShapesProbe.from_pretrained(SHIPPED[world])


def default_probe() -> ShapesProbe:
    """The shipped probe of the default world (loaded once per process, CPU, eval mode)."""
    return _shipped_probe(DEFAULT_WORLD)


# --------------------------------------------------------------------------------------------------------
# Input conversion and decoding
# --------------------------------------------------------------------------------------------------------

ImageInput = Sequence[Image.Image | np.ndarray] | np.ndarray | Tensor
"""What :func:`read_scenes` accepts: a list of PIL images or ``(H, W, 3)`` uint8 arrays, a ``(B, H, W, 3)``
uint8 array, or a ``(B, 3, H, W)`` float tensor in ``[0, 1]``."""


def _array_to_tensor(array: np.ndarray, what: str) -> Tensor:
    if array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3 or min(array.shape[:2]) < 1:
        raise DiffinvError(f"{what} must be a uint8 (H, W, 3) array, got {array.dtype} {array.shape}")
    return torch.from_numpy(array.copy()).permute(2, 0, 1).float().div(255.0)  # copy: PIL arrays are read-only


def to_probe_input(images: ImageInput, image_size: int = 64) -> Tensor:
    """Convert images to the probe's input: ``(B, 3, image_size, image_size)`` float32 in ``[0, 1]``.

    Accepts a list of PIL images (any mode, converted to RGB) or ``(H, W, 3)`` uint8 arrays, a
    ``(B, H, W, 3)`` uint8 array, or a ``(B, 3, H, W)`` floating tensor in ``[0, 1]`` (values are clamped).
    Images of another size are resized (bilinear, antialiased; non-square ones are stretched). Anything
    else raises :class:`~diffinv.errors.DiffinvError` (a ValueError).
    """
    if isinstance(images, Tensor):
        if not images.is_floating_point() or images.ndim != 4 or images.shape[1] != 3 or images.shape[0] < 1:
            raise DiffinvError(
                f"expected a (B, 3, H, W) float tensor in [0, 1], got {images.dtype} {tuple(images.shape)}"
            )
        if not bool(torch.isfinite(images).all()):
            raise DiffinvError("the image tensor holds NaN or infinite values")
        batch = images.detach().float().cpu().clamp(0.0, 1.0)
        return _resize(batch, image_size)
    if isinstance(images, np.ndarray):
        if images.ndim != 4:
            raise DiffinvError(f"expected a (B, H, W, 3) uint8 array or a list of images, got shape {images.shape}")
        images = list(images)
    if isinstance(images, (str, bytes)) or not isinstance(images, Sequence) or len(images) == 0:
        raise DiffinvError(
            f"expected a non-empty list of images, a uint8 array or a float tensor, got {type(images).__name__}"
        )
    tensors = []
    for i, image in enumerate(images):
        if isinstance(image, Image.Image):
            tensor = _array_to_tensor(np.asarray(image.convert("RGB")), f"image {i}")
        elif isinstance(image, np.ndarray):
            tensor = _array_to_tensor(image, f"image {i}")
        else:
            raise DiffinvError(f"image {i} is a {type(image).__name__}; expected a PIL image or a uint8 array")
        tensors.append(_resize(tensor.unsqueeze(0), image_size))
    return torch.cat(tensors)


def _resize(batch: Tensor, image_size: int) -> Tensor:
    if batch.shape[-2:] == (image_size, image_size):
        return batch.contiguous()
    return F.interpolate(batch, size=(image_size, image_size), mode="bilinear", antialias=True, align_corners=False)


def decode_scenes(output: ProbeOutput, world: World | None = None) -> list[Scene]:
    """Most likely valid scene of ``world`` (default: v2) for every image of a batch of probe logits.

    The background is the arg-max of its head. A cell holds an object when its arg-max class is not
    ``"empty"``; if more than the world's maximum number of objects do, the most confident ones are kept, and if
    none does, the least-empty cell holds the one object. Colours are restricted to those allowed on the predicted
    background. Objects come in canonical (row-major) order, without jitter.
    """
    world = world or get_world(DEFAULT_WORLD)
    shape_prob = output.shape.detach().float().softmax(dim=-1).cpu()  # (B, 9, classes)
    color_logits = output.color.detach().float().cpu()
    size_index = output.size.detach().argmax(dim=-1).cpu()
    fill_index = None if output.fill is None else output.fill.detach().argmax(dim=-1).cpu()
    background_index = output.background.detach().argmax(dim=-1).cpu()
    scenes = []
    for b in range(shape_prob.shape[0]):
        background = BACKGROUNDS[int(background_index[b])]
        object_prob = 1.0 - shape_prob[b, :, 0]
        occupied = [c for c in range(NUM_CELLS) if int(shape_prob[b, c].argmax()) != 0]
        if len(occupied) > world.max_objects:
            occupied = sorted(occupied, key=lambda c: -float(object_prob[c]))[: world.max_objects]
        if len(occupied) < world.min_objects:
            occupied = [int(object_prob.argmax())]
        allowed = [COLORS.index(c) for c in world.allowed_colors[background]]
        objects = []
        for c in sorted(occupied):
            shape = world.shapes[int(shape_prob[b, c, 1:].argmax())]
            color = COLORS[allowed[int(color_logits[b, c, allowed].argmax())]]
            size = SIZES[int(size_index[b, c])]
            filled = fill_index is not None and size in world.fill_sizes
            fill = world.fills[int(fill_index[b, c])] if filled else world.fills[0]
            objects.append(ShapeObject(shape, color, size, POSITIONS[c], fill=fill))
        scenes.append(Scene(background, tuple(objects), world.name))
    return scenes


@torch.no_grad()
def read_scenes(images: ImageInput, probe: ShapesProbe | None = None, batch_size: int = 256) -> list[Scene]:
    """Read the scene shown in each image.

    Args:
        images: A list of PIL images or ``(H, W, 3)`` uint8 arrays, a ``(B, H, W, 3)`` uint8 array, or a
            ``(B, 3, H, W)`` float tensor in ``[0, 1]``; any size (resized to the probe's input size).
        probe: The probe to use (default: the shipped one, see :func:`default_probe`). It is run in eval
            mode; its training flag is restored afterwards.
        batch_size: Images per forward pass.

    Returns:
        One :class:`~diffinv.shapes.scene.Scene` per image, objects in canonical order, without jitter.

    Raises:
        DiffinvError (a ValueError): for input of the wrong type, dtype or shape.
    """
    probe = probe if probe is not None else default_probe()
    pixels = to_probe_input(images, probe.config.image_size)
    device = next(probe.parameters()).device
    was_training = probe.training
    probe.eval()
    try:
        scenes: list[Scene] = []
        for start in range(0, pixels.shape[0], batch_size):
            scenes += decode_scenes(probe(pixels[start : start + batch_size].to(device)), probe.config.world_spec)
    finally:
        probe.train(was_training)
    return scenes


@torch.no_grad()
def scene_confidence(images: ImageInput, probe: ShapesProbe | None = None) -> Tensor:
    """How sure the probe is that each image is a clean Shapes scene: the mean, over the 9 cells' occupancy-and-shape
    heads, the occupied cells' colour, size (and fill) heads and the background head, of the top class probability;
    ``(B,)`` in (0, 1]. Renders score near 1; blurry, blobby or ambiguous pictures lower (SDEdit's "realism")."""
    probe = probe if probe is not None else default_probe()
    pixels = to_probe_input(images, probe.config.image_size)
    was_training = probe.training
    probe.eval()
    try:
        output = probe(pixels.to(next(probe.parameters()).device))
    finally:
        probe.train(was_training)
    shape, color, size, background, *fill = (
        head.float().softmax(dim=-1).amax(dim=-1).cpu() for head in output if head is not None
    )  # shape, color, size, fill: (B, 9)
    occupied = (output.shape.float().argmax(dim=-1) != 0).cpu().float()
    per_object = (color + size + sum(fill)) / (2 + len(fill))
    objects = (per_object * occupied).sum(-1) / occupied.sum(-1).clamp(min=1)
    return (shape.mean(-1) + objects + background) / 3


# --------------------------------------------------------------------------------------------------------
# Scoring and description
# --------------------------------------------------------------------------------------------------------

AGREEMENT_KEYS: Final[tuple[str, ...]] = ("background", "shape", "color", "size", "position", "all")
"""Keys of :func:`scene_agreement` (and ``fill`` for scenes of a world with fills)."""


def scene_agreement(pred: Scene, truth: Scene) -> dict[str, float]:
    """Per-attribute agreement in ``[0, 1]`` between a predicted (e.g. probed) scene and the true one.

    Objects are matched by grid cell; jitter and drawing order are ignored. The object attributes are
    averaged over the *slots*: the cells occupied in either scene, so missing and spurious objects both
    count as wrong.

    Returns:
        ``background``: 1.0 if the backgrounds agree, else 0.0.
        ``shape``, ``color``, ``size``: fraction of slots occupied in both scenes by objects with the same
        shape / colour / size.
        ``position``: fraction of slots occupied in both scenes (the Jaccard index of the occupied cells).
        ``fill``: as ``shape``, for the fill; only when the true scene's world has several fills.
        ``all``: 1.0 if everything agrees (same background, same objects in the same cells), else 0.0.
    """
    pred_cells = {o.position: o for o in pred.objects}
    truth_cells = {o.position: o for o in truth.objects}
    slots = set(pred_cells) | set(truth_cells)
    both = [(pred_cells[c], truth_cells[c]) for c in slots if c in pred_cells and c in truth_cells]
    n = len(slots)
    scores = {
        "background": float(pred.background == truth.background),
        "shape": sum(p.shape == t.shape for p, t in both) / n,
        "color": sum(p.color == t.color for p, t in both) / n,
        "size": sum(p.size == t.size for p, t in both) / n,
        "position": len(both) / n,
    }
    if len(get_world(truth.world).fills) > 1:
        scores["fill"] = sum(p.fill == t.fill for p, t in both) / n
    scores["all"] = float(all(v == 1.0 for v in scores.values()))
    return scores


def mean_agreement(preds: Sequence[Scene], truths: Sequence[Scene]) -> dict[str, float]:
    """:func:`scene_agreement` averaged over pairs of scenes (its keys)."""
    if len(preds) != len(truths) or not preds:
        raise ValueError(f"need equally many (>0) predicted and true scenes, got {len(preds)} and {len(truths)}")
    scores = [scene_agreement(p, t) for p, t in zip(preds, truths, strict=True)]
    return {k: sum(s[k] for s in scores) / len(scores) for k in scores[0]}


def describe(scene: Scene) -> dict[str, Any]:
    """JSON form of what the probe reads: ``{"background": ..., "objects": [{"shape", "color", "size",
    "position"(, "fill")}, ...]}`` (objects in the scene's order; no jitter; a fill only when not solid)."""
    return {
        "background": scene.background,
        "objects": [{k: v for k, v in o.to_dict().items() if k != "offset"} for o in scene.objects],
    }


def probe_main(paths: Sequence[str], as_json: bool = False, stream: TextIO | None = None) -> int:
    """Logic of ``diffinv probe IMAGE... [--json]``: print the scene read from every image; returns 0.

    Text output is one line per image, ``PATH: <canonical caption>``; JSON output is one list of
    ``{"path": ..., **describe(scene)}``. Unreadable images raise :class:`~diffinv.errors.DiffinvError`.
    """
    from diffinv.images import open_image  # lazy: pulls in diffusers
    from diffinv.shapes.captions import caption

    stream = stream if stream is not None else sys.stdout
    scenes = read_scenes([open_image(p) for p in paths])
    if as_json:
        stream.write(json.dumps([{"path": str(p), **describe(s)} for p, s in zip(paths, scenes, strict=True)]) + "\n")
    else:
        for p, s in zip(paths, scenes, strict=True):
            stream.write(f"{p}: {caption(s)}\n")
    return 0
