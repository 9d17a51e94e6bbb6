"""Image and latent comparison metrics, usable alone.

Pixel tensors are ``(B, 3, H, W)`` floats in [0, 1]. PSNR and SSIM come from scikit-image. LPIPS and CLIP need
pretrained weights: :func:`load_lpips` and :func:`load_clip` return a scorer when the weights exist locally and
otherwise a string ``"unavailable: <reason>"`` — never a made-up number, and never a download the user did not ask
for.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torch import Tensor

# The default CLIP checkpoint looked up in the local Hugging Face cache (CLIP ViT-B/32, as used for CLIP-I/CLIP-T).
DEFAULT_CLIP = "openai/clip-vit-base-patch32"
# LPIPS (Zhang et al. 2018) with the AlexNet backbone, as in the reference paper; torchvision's weight file name.
ALEXNET_WEIGHTS = "alexnet-owt-7be5be79.pth"


def _to_numpy(images: Tensor) -> np.ndarray:
    if images.ndim != 4 or images.shape[1] != 3:
        raise ValueError(f"expected (B, 3, H, W) images, got {tuple(images.shape)}")
    return images.detach().to("cpu", torch.float64).clamp(0, 1).permute(0, 2, 3, 1).numpy()


def _check(image: Tensor, reference: Tensor) -> None:
    if image.shape != reference.shape:
        raise ValueError(f"shape mismatch: {tuple(image.shape)} vs {tuple(reference.shape)}")


def psnr(image: Tensor, reference: Tensor) -> float:
    """Mean PSNR in dB over the batch (data range 1; ``inf`` when identical)."""
    _check(image, reference)
    a, b = _to_numpy(image), _to_numpy(reference)
    values = [
        math.inf if np.array_equal(x, y) else peak_signal_noise_ratio(y, x, data_range=1.0)
        for x, y in zip(a, b, strict=True)
    ]
    return float(np.mean(values))


def ssim(image: Tensor, reference: Tensor) -> float:
    """Mean SSIM over the batch (Wang et al. 2004; scikit-image, 7×7 window, data range 1)."""
    _check(image, reference)
    a, b = _to_numpy(image), _to_numpy(reference)
    window = min(7, (min(a.shape[1:3]) - 1) // 2 * 2 + 1)  # the largest odd window ≤ 7 that fits
    values = [
        structural_similarity(y, x, channel_axis=-1, data_range=1.0, win_size=window) for x, y in zip(a, b, strict=True)
    ]
    return float(np.mean(values))


def latent_mse(latents: Tensor, reference: Tensor) -> float:
    """Mean squared error between two latents of the same shape."""
    _check(latents, reference)
    return torch.mean((latents.double() - reference.double().to(latents.device)) ** 2).item()


def load_lpips(weights_dir: str | Path | None = None) -> Callable[[Tensor, Tensor], float] | str:
    """An LPIPS-AlexNet scorer ``f(image, reference) -> float`` or ``"unavailable: <reason>"``.

    Needs torchmetrics and torchvision, and AlexNet's weights in ``weights_dir`` or the torch hub cache; nothing is
    downloaded.
    """
    cache = Path(weights_dir) if weights_dir else Path(torch.hub.get_dir()) / "checkpoints"
    if not (cache / ALEXNET_WEIGHTS).is_file():
        return f"unavailable: LPIPS needs AlexNet weights ({ALEXNET_WEIGHTS}) in {cache}"
    try:
        from torchmetrics.image.lpip import LearnedPerceptualImagePatchSimilarity
    except Exception as exc:  # noqa: BLE001 - torchvision/torchmetrics import failures take many forms
        return f"unavailable: LPIPS needs torchmetrics and torchvision ({type(exc).__name__}: {exc})"
    previous = os.environ.get("TORCH_HOME")
    os.environ["TORCH_HOME"] = str(cache.parent.parent) if weights_dir is None else str(cache)
    try:
        model = LearnedPerceptualImagePatchSimilarity(net_type="alex", normalize=True).eval()
    except Exception as exc:  # noqa: BLE001
        return f"unavailable: LPIPS could not be built offline ({type(exc).__name__})"
    finally:
        if previous is None:
            os.environ.pop("TORCH_HOME", None)
        else:
            os.environ["TORCH_HOME"] = previous

    @torch.no_grad()
    def score(image: Tensor, reference: Tensor) -> float:
        _check(image, reference)
        return float(model(image.float().clamp(0, 1), reference.float().clamp(0, 1)))

    return score


@dataclass
class ClipScorer:
    """CLIP-I (cosine similarity of image embeddings) and CLIP-T (image–text cosine similarity)."""

    model: object
    processor: object

    @torch.no_grad()
    def _image_features(self, images: Tensor) -> Tensor:
        pil = [Image.fromarray((a * 255).round().astype(np.uint8)) for a in _to_numpy(images)]
        inputs = self.processor(images=pil, return_tensors="pt")
        features = self.model.get_image_features(pixel_values=inputs["pixel_values"])
        features = getattr(features, "pooler_output", features)
        return torch.nn.functional.normalize(features, dim=-1)

    def clip_i(self, image: Tensor, reference: Tensor) -> float:
        _check(image, reference)
        return float((self._image_features(image) * self._image_features(reference)).sum(-1).mean())

    @torch.no_grad()
    def clip_t(self, image: Tensor, texts: list[str]) -> float:
        inputs = self.processor(text=texts, return_tensors="pt", padding=True, truncation=True)
        text = self.model.get_text_features(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
        text = torch.nn.functional.normalize(getattr(text, "pooler_output", text), dim=-1)
        return float((self._image_features(image) * text).sum(-1).mean())


def load_clip(model: str | Path | None = None) -> ClipScorer | str:
    """A :class:`ClipScorer` from a local CLIP folder or the local Hugging Face cache, or ``"unavailable: ..."``."""
    from transformers import CLIPModel, CLIPProcessor

    name = str(model or DEFAULT_CLIP)
    try:
        clip = CLIPModel.from_pretrained(name, local_files_only=True).eval()
        processor = CLIPProcessor.from_pretrained(name, local_files_only=True)
    except Exception as exc:  # noqa: BLE001 - missing files surface as OSError, ValueError, ...
        return f"unavailable: no local CLIP weights at {name!r} ({type(exc).__name__}); pass --clip-model PATH"
    return ClipScorer(clip, processor)
