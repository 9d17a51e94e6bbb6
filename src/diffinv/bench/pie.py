"""PIE-Bench, the editing benchmark of PnP Inversion / DirectInversion (Ju et al. 2023, github cure-lab/PnPInversion).

Layout: ``ROOT/mapping_file.json`` and the images under ``ROOT/annotation_images/`` (either may also sit in
``ROOT/data/``, as in the PnPInversion repository). The mapping file is a JSON object keyed by image id::

    "000000000000": {
        "image_path": "0_random_140/000000000000.jpg",   # relative to annotation_images/
        "original_prompt": "a slanted mountain bicycle on the road in front of a building",
        "editing_prompt": "a slanted [rusty] mountain bicycle on the road in front of a building",
        "editing_instruction": "Make the frame of the bike rusty",
        "editing_type_id": "0",                           # "0".."9", the folder prefix of image_path
        "blended_word": "bicycle bicycle",                # "source-word target-word", or ""
        "mask": [start, length, start, length, ...]       # run-length encoded edit region of a 512×512 image
    }

Square brackets in the prompts mark the words that differ between the two prompts; PnPInversion strips them
(``prompt.replace("[", "").replace("]", "")``) before use, and so does :func:`load_pie`, keeping the bracketed
phrases in :attr:`PieSample.edited_words`. ``blended_word`` is split on spaces as PnPInversion's editing scripts do.

The mask decoding and the background-preservation metrics follow PnPInversion's ``evaluation/evaluate.py``
(``mask_decode``, ``calculate_metric``) and ``evaluation/matrics_calculator.py`` (``MetricsCalculator``); see
:func:`decode_mask` and :func:`background_scores` for the exact conventions.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from diffinv import metrics
from diffinv.bench.datasets import deterministic_subset
from diffinv.errors import DiffinvError
from diffinv.images import open_image

PIE_SIZE = 512  # PIE-Bench images and masks are 512×512
MAPPING_FILE = "mapping_file.json"
IMAGE_FOLDER = "annotation_images"
_BRACKETED = re.compile(r"\[([^\[\]]*)\]")


def _is_int(value: object) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool)


def _rle_runs(rle: object, height: int, width: int) -> list[tuple[int, int]]:
    """Validated ``(start, end)`` flat-index runs, each end clipped to the image as PnPInversion clips it."""
    if isinstance(rle, str | bytes) or not isinstance(rle, Sequence | np.ndarray):
        raise DiffinvError(f"expected a list of integers [start, length, ...], got {type(rle).__name__}")
    values = list(rle)
    if len(values) % 2:
        raise DiffinvError(f"odd length {len(values)}; expected [start, length, start, length, ...] pairs")
    for i, value in enumerate(values):
        if not _is_int(value):
            raise DiffinvError(f"item {i} is {value!r}, not an integer")
        if value < 0:
            raise DiffinvError(f"item {i} is negative ({value})")
    total = height * width
    runs = []
    for i in range(0, len(values), 2):
        start, length = int(values[i]), int(values[i + 1])
        if start >= total:
            raise DiffinvError(
                f"run {i // 2} starts at pixel {start}, outside the {height}×{width} image ({total} pixels)"
            )
        runs.append((start, start + min(length, total - start)))
    return runs


def decode_mask(rle: Sequence[int], height: int = PIE_SIZE, width: int = PIE_SIZE) -> np.ndarray:
    """Decode a PIE-Bench run-length mask to a boolean ``(height, width)`` array, ``True`` = region to edit.

    Same semantics as ``mask_decode`` in PnPInversion's ``evaluation/evaluate.py``: ``rle`` is a flat list
    ``[start, length, start, length, ...]`` of runs over the image flattened in row-major (C) order — pixel
    ``(row, col)`` is index ``row * width + col``, no transposition. A run that would pass the last pixel is clipped
    there (PnPInversion's ``min(length, H*W - start)``). Finally the one-pixel border (first/last row and column) is
    always set to ``True`` — PnPInversion does this "to avoid annotation errors in boundary", which also keeps the
    border out of the background-preservation metrics. PnPInversion returns float64 0/1; ``.astype(float)`` of this
    array is identical.

    Raises :class:`DiffinvError` for an odd-length list, non-integer or negative items, or a run starting outside
    the image (which PnPInversion would silently ignore).
    """
    if not (_is_int(height) and _is_int(width) and height > 0 and width > 0):
        raise DiffinvError(f"mask size must be positive integers, got {height!r}×{width!r}")
    total = height * width
    cover = np.zeros(total + 1, dtype=np.int64)
    for start, end in _rle_runs(rle, height, width):
        cover[start] += 1
        cover[end] -= 1
    mask = (np.cumsum(cover[:total]) > 0).reshape(height, width)
    mask[[0, -1], :] = True
    mask[:, [0, -1]] = True
    return mask


@dataclass(frozen=True)
class PieSample:
    """One PIE-Bench item; prompts have their ``[...]`` markers removed.

    ``blended_words`` is the mapping file's ``blended_word`` split on spaces (``("cat", "dog")``: the source word
    and the target word, used by prompt-to-prompt's local blending; empty when the file has ``""``).
    ``edited_words`` is ``(source phrases, target phrases)``: the bracketed phrases of each prompt, in order.
    """

    id: str
    image_path: Path
    source_prompt: str
    target_prompt: str
    instruction: str
    editing_type: str
    blended_words: tuple[str, ...]
    edited_words: tuple[tuple[str, ...], tuple[str, ...]]
    mask_rle: tuple[int, ...]

    def load_image(self) -> Image.Image:
        """The source image as 8-bit RGB."""
        return open_image(self.image_path)

    def mask(self, height: int = PIE_SIZE, width: int = PIE_SIZE) -> np.ndarray:
        """The edit mask, decoded at 512×512 and resized (nearest) to ``(height, width)``; ``True`` = edit region.

        After resizing, the one-pixel border is marked again, so PnPInversion's border convention holds at any size
        (nearest resampling would otherwise drop it).
        """
        if not (_is_int(height) and _is_int(width) and height > 0 and width > 0):
            raise DiffinvError(f"mask size must be positive integers, got {height!r}×{width!r}")
        mask = decode_mask(self.mask_rle)
        if (height, width) == mask.shape:
            return mask
        resized = np.array(Image.fromarray(mask).resize((width, height), Image.Resampling.NEAREST), dtype=bool)
        resized[[0, -1], :] = True
        resized[:, [0, -1]] = True
        return resized


def _find(root: Path, name: str, *, folder: bool) -> Path:
    for base in (root, root / "data"):
        candidate = base / name
        if candidate.is_dir() if folder else candidate.is_file():
            return candidate
    raise DiffinvError(f"{root}: expected {name} in {root} or {root / 'data'}")


def _field(entry: dict, name: str, types: type | tuple[type, ...], what: str) -> object:
    if name not in entry:
        raise DiffinvError(f"missing {name!r}")
    value = entry[name]
    if not isinstance(value, types) or isinstance(value, bool):
        raise DiffinvError(f"{name!r} must be {what}, got {type(value).__name__}")
    return value


def _sample(key: str, entry: object, image_dir: Path) -> PieSample:
    if not isinstance(entry, dict):
        raise DiffinvError(f"expected an object, got {type(entry).__name__}")
    relative = _field(entry, "image_path", str, "a string")
    source = _field(entry, "original_prompt", str, "a string")
    target = _field(entry, "editing_prompt", str, "a string")
    instruction = _field(entry, "editing_instruction", str, "a string")
    editing_type = _field(entry, "editing_type_id", (str, int), "a string or an integer")
    blended = _field(entry, "blended_word", str, "a string")
    rle = _field(entry, "mask", list, "a list of integers")
    try:
        _rle_runs(rle, PIE_SIZE, PIE_SIZE)
    except DiffinvError as exc:
        raise DiffinvError(f"'mask': {exc}") from None
    if Path(relative).is_absolute() or ".." in Path(relative).parts:
        raise DiffinvError(f"'image_path' must be relative to {IMAGE_FOLDER}/, got {relative!r}")
    image_path = image_dir / relative
    if not image_path.is_file():
        raise DiffinvError(f"image not found: {image_path}")
    return PieSample(
        id=key,
        image_path=image_path,
        source_prompt=source.replace("[", "").replace("]", ""),
        target_prompt=target.replace("[", "").replace("]", ""),
        instruction=instruction,
        editing_type=str(editing_type),
        blended_words=tuple(blended.split()),
        edited_words=(
            tuple(word.strip() for word in _BRACKETED.findall(source)),
            tuple(word.strip() for word in _BRACKETED.findall(target)),
        ),
        mask_rle=tuple(int(v) for v in rle),
    )


def load_pie(root: str | Path, limit: int | None = None, seed: int = 0) -> list[PieSample]:
    """Read PIE-Bench from ``root`` (see the module docstring), sorted by id.

    ``limit`` keeps a deterministic sample (seeded choice among the sorted ids), as
    :func:`diffinv.bench.datasets.load_dataset` does. Every entry is validated; a bad one raises
    :class:`DiffinvError` naming the file, the entry and the problem.
    """
    root = Path(root)
    mapping = _find(root, MAPPING_FILE, folder=False)
    image_dir = _find(root, IMAGE_FOLDER, folder=True)
    try:
        data = json.loads(mapping.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise DiffinvError(f"{mapping}: not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise DiffinvError(f"{mapping}: expected a JSON object keyed by image id, got {type(data).__name__}")
    if not data:
        raise DiffinvError(f"{mapping}: no entries")
    samples = []
    for key in sorted(data):
        try:
            samples.append(_sample(key, data[key], image_dir))
        except DiffinvError as exc:
            raise DiffinvError(f"{mapping}: entry {key!r}: {exc}") from None
    return deterministic_subset(samples, limit, seed)


def _pixels(image: np.ndarray | Tensor | Image.Image, name: str) -> Tensor:
    """``(1, 3, H, W)`` float64 in [0, 1] from an ``(H, W, 3)`` array/PIL image or a ``(3, H, W)``/``(1, 3, H, W)``
    tensor; uint8 values are divided by 255, floats are taken as already in [0, 1]."""
    if isinstance(image, Image.Image):
        image = np.asarray(image.convert("RGB"))
    if isinstance(image, np.ndarray):
        if image.ndim != 3 or image.shape[2] != 3:
            raise DiffinvError(f"{name}: expected an (H, W, 3) array, got shape {image.shape}")
        tensor = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)
    elif isinstance(image, Tensor):
        tensor = image.detach().cpu()
        if tensor.ndim == 4 and tensor.shape[0] == 1:
            tensor = tensor[0]
        if tensor.ndim != 3 or tensor.shape[0] != 3:
            raise DiffinvError(f"{name}: expected a (3, H, W) or (1, 3, H, W) tensor, got {tuple(image.shape)}")
    else:
        raise DiffinvError(f"{name}: expected an image array or tensor, got {type(image).__name__}")
    scale = 255.0 if tensor.dtype == torch.uint8 else 1.0
    return (tensor.to(torch.float64) / scale)[None]


def background_scores(
    edited: np.ndarray | Tensor | Image.Image,
    source: np.ndarray | Tensor | Image.Image,
    mask: np.ndarray,
    *,
    lpips: Callable[[Tensor, Tensor], float] | None = None,
) -> dict[str, float]:
    """PIE-Bench background preservation: PSNR, SSIM, MSE (and LPIPS when ``lpips`` is given) outside ``mask``.

    PnPInversion's convention (``calculate_metric``'s ``*_unedit_part`` metrics in ``evaluation/evaluate.py``, with
    ``MetricsCalculator`` in ``evaluation/matrics_calculator.py``): both images, scaled to [0, 1], are multiplied by
    ``1 - mask`` and the metrics are computed on the whole masked images. The zeroed edit region thus still counts
    in the averages (PSNR and MSE are means over all ``H×W×3`` values, not over the background pixels only), and
    with :func:`decode_mask`'s border the image border is excluded too. When the mask covers everything, every
    score is ``nan`` (PnPInversion writes ``"nan"``).

    PSNR (data range 1, ``inf`` when the masked images are identical) and SSIM come from :mod:`diffinv.metrics`
    (scikit-image; its SSIM uses a 7×7 uniform window where PnPInversion's torchmetrics uses an 11×11 Gaussian, so
    SSIM values differ slightly). MSE is :func:`diffinv.metrics.latent_mse` of the masked images. ``lpips`` is any
    ``f(image, reference) -> float`` on ``(1, 3, H, W)`` images in [0, 1], e.g. :func:`diffinv.metrics.load_lpips`'s
    (AlexNet; PnPInversion used SqueezeNet). Raw values are returned; PnPInversion's tables show LPIPS×10³,
    MSE×10⁴ and SSIM×10².

    ``edited``/``source``: ``(H, W, 3)`` arrays or PIL images (uint8, or floats in [0, 1]) or ``(3, H, W)`` /
    ``(1, 3, H, W)`` tensors in [0, 1]; ``mask``: ``(H, W)``, nonzero/``True`` = edited region.
    """
    image, reference = _pixels(edited, "edited"), _pixels(source, "source")
    if image.shape != reference.shape:
        raise DiffinvError(f"image size mismatch: {tuple(image.shape[2:])} vs {tuple(reference.shape[2:])}")
    mask = np.asarray(mask)
    if mask.shape != tuple(image.shape[2:]):
        raise DiffinvError(f"mask shape {mask.shape} does not match the images' {tuple(image.shape[2:])}")
    keep = 1.0 - torch.from_numpy(mask.astype(np.float64))
    names = ("psnr", "ssim", "mse") + (("lpips",) if lpips is not None else ())
    if not keep.any():
        return dict.fromkeys(names, math.nan)
    image, reference = image * keep, reference * keep
    scores = {
        "psnr": metrics.psnr(image, reference),
        "ssim": metrics.ssim(image, reference),
        "mse": metrics.latent_mse(image, reference),
    }
    if lpips is not None:
        scores["lpips"] = float(lpips(image.float(), reference.float()))
    return scores
