"""Image and latent comparison metrics, usable alone.

Pixel tensors are ``(B, 3, H, W)`` floats in [0, 1]. PSNR and SSIM come from scikit-image. LPIPS and CLIP need
pretrained weights: :func:`load_lpips` and :func:`load_clip` return a scorer when the weights exist locally and
otherwise a string ``"unavailable: <reason>"`` — never a made-up number, and never a download the user did not ask
for. Distances between *sets* of images (FID, KID: :func:`feature_distances`) take any feature network: the Shapes
probe's (:class:`~diffinv.shapes.probe.ProbeFeatures`, always there) or Inception's where its weights are on disk
(:func:`load_inception`).
"""

from __future__ import annotations

import math
import pickle
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from torch import Tensor, nn

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


class LPIPSAlex(nn.Module):
    """LPIPS v0.1 with the AlexNet backbone (Zhang et al. 2018), in plain torch.

    The backbone is torchvision's AlexNet ``features`` stack, laid out as torchvision lays it out so that its weight
    file (``ALEXNET_WEIGHTS``) loads as is, without torchvision; the per-layer linear heads and the input scaling are
    torchmetrics' (``ScalingLayer``, ``NetLinLayer`` and its packaged ``lpips_models/alex.pth``). The distance is
    ``Σ_l mean_hw ‖w_l ⊙ (f̂_l(x) − f̂_l(y))‖²`` over the five ReLU outputs, ``f̂`` unit-normalised over channels.
    """

    TAPS = (1, 4, 7, 9, 11)  # indices of the ReLUs whose outputs are compared
    CHANNELS = (64, 192, 384, 256, 256)

    def __init__(self) -> None:
        from torchmetrics.functional.image.lpips import NetLinLayer, ScalingLayer

        super().__init__()
        self.scaling_layer = ScalingLayer()
        self.features = nn.Sequential(
            nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(64, 192, kernel_size=5, padding=2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(kernel_size=3, stride=2),
            nn.Conv2d(192, 384, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(384, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(256, 256, kernel_size=3, padding=1),
            nn.ReLU(inplace=True),
        )
        self.lins = nn.ModuleList(NetLinLayer(c, use_dropout=True) for c in self.CHANNELS)

    def _taps(self, x: Tensor) -> list[Tensor]:
        taps = []
        for index, layer in enumerate(self.features):
            x = layer(x)
            if index in self.TAPS:
                taps.append(x / (x.pow(2).sum(dim=1, keepdim=True).sqrt() + 1e-10))
        return taps

    @torch.no_grad()
    def forward(self, image: Tensor, reference: Tensor) -> Tensor:
        """Per-image distances ``(B,)`` of ``(B, 3, H, W)`` images in [0, 1]."""
        a, b = (self._taps(self.scaling_layer(2 * x.float() - 1)) for x in (image, reference))
        return sum(lin((fa - fb) ** 2).mean(dim=(1, 2, 3)) for lin, fa, fb in zip(self.lins, a, b, strict=True))


def load_lpips(weights_dir: str | Path | None = None) -> Callable[[Tensor, Tensor], float] | str:
    """An LPIPS-AlexNet scorer ``f(image, reference) -> float`` (the batch mean) or ``"unavailable: <reason>"``.

    Needs AlexNet's ImageNet weights (torchvision's ``alexnet-owt-7be5be79.pth``) in ``weights_dir`` or the torch
    hub cache, and torchmetrics (a dependency) for the LPIPS heads; nothing is downloaded, and torchvision is not
    needed (see :class:`LPIPSAlex`). Weight files are read with ``torch.load(weights_only=True)``.
    """
    cache = Path(weights_dir) if weights_dir else Path(torch.hub.get_dir()) / "checkpoints"
    path = cache / ALEXNET_WEIGHTS
    if not path.is_file():
        return f"unavailable: LPIPS needs AlexNet weights ({ALEXNET_WEIGHTS}) in {cache}"
    try:
        from torchmetrics.functional.image import lpips as torchmetrics_lpips

        model = LPIPSAlex()
        heads = Path(torchmetrics_lpips.__file__).parent / "lpips_models" / "alex.pth"
        model.lins.load_state_dict(
            {k.replace("lin", "", 1): v for k, v in torch.load(heads, map_location="cpu", weights_only=True).items()}
        )
        backbone = torch.load(path, map_location="cpu", weights_only=True)
        model.features.load_state_dict(
            {k.removeprefix("features."): v for k, v in backbone.items() if k.startswith("features.")}
        )
    except ImportError as exc:
        return f"unavailable: LPIPS needs torchmetrics ({exc})"
    except (RuntimeError, OSError, ValueError, AttributeError, pickle.UnpicklingError) as exc:
        return f"unavailable: {path} is not torchvision's AlexNet weights ({type(exc).__name__})"
    model.eval()

    def score(image: Tensor, reference: Tensor) -> float:
        _check(image, reference)
        return float(model(image.cpu().clamp(0, 1), reference.cpu().clamp(0, 1)).mean())

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


def feature_distances(
    images: Tensor, references: Tensor, features: nn.Module, *, kid_subsets: int = 50, kid_subset_size: int = 100
) -> dict[str, float]:
    """Fréchet distance (FID, Heusel et al. 2017) and kernel distance (KID, Bińkowski et al. 2018) between two sets
    of ``(N, 3, H, W)`` images in [0, 1] in the space of ``features`` (a module taking such images and returning
    ``(N, D)``): :func:`distribution_distances` of their features."""
    for name, batch in (("images", images), ("references", references)):
        if batch.ndim != 4 or batch.shape[1] != 3 or batch.shape[0] < 2:
            raise ValueError(f"{name} must be (N >= 2, 3, H, W) images, got {tuple(batch.shape)}")
    fake, real = (features(batch.float()) for batch in (images, references))
    return distribution_distances(fake, real, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size)


def distribution_distances(
    features: Tensor, reference_features: Tensor, *, kid_subsets: int = 50, kid_subset_size: int = 100
) -> dict[str, float]:
    """FID and KID between two sets of feature vectors ``(N, D)``, through torchmetrics: ``fid``; ``kid`` and
    ``kid_std``, the mean and standard deviation over ``kid_subsets`` random subsets of the unbiased MMD² of a cubic
    polynomial kernel.

    FID is biased upwards for small sets; compare FIDs of equal set sizes only. KID is unbiased (it may be slightly
    negative for sets from one distribution). The subsets of KID are drawn from torch's global generator, forked and
    seeded here, so the result is deterministic.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    fake, real = features.double(), reference_features.double()
    if fake.ndim != 2 or real.ndim != 2 or fake.shape[1] != real.shape[1] or min(len(fake), len(real)) < 2:
        raise ValueError(f"need two (N >= 2, D) feature sets, got {tuple(fake.shape)} and {tuple(real.shape)}")
    size = min(kid_subset_size, len(fake), len(real))
    given = _Given(fake.shape[-1])
    fid = FrechetInceptionDistance(feature=given, normalize=True, reset_real_features=True)
    with warnings.catch_warnings():  # "will save all extracted features": they are what KID needs
        warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
        kid = KernelInceptionDistance(feature=given, normalize=True, subsets=kid_subsets, subset_size=size)
    for metric in (fid, kid):
        metric.update(real, real=True)
        metric.update(fake, real=False)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        kid_mean, kid_std = kid.compute()
    return {"fid": float(fid.compute()), "kid": float(kid_mean), "kid_std": float(kid_std)}


def load_inception(weights: str | Path | None = None) -> nn.Module | str:
    """The FID Inception-v3 feature network (2048-d pool features, torch-fidelity's port used by torchmetrics) from
    a local weights file, or ``"unavailable: <reason>"``; nothing is downloaded."""
    if weights is None or not Path(weights).is_file():
        return "unavailable: FID on Inception features needs its weights file (pt_inception-2015-12-05-6726825d.pth)"
    try:
        from torchmetrics.image.fid import NoTrainInceptionV3

        network = NoTrainInceptionV3(name="inception-v3-compat", features_list=["2048"],
                                     feature_extractor_weights_path=str(weights))  # fmt: skip
    except (ImportError, ModuleNotFoundError) as exc:
        return f"unavailable: FID on Inception features needs torch-fidelity ({exc})"
    except (RuntimeError, OSError, ValueError, pickle.UnpicklingError) as exc:
        return f"unavailable: {weights} is not the FID Inception weights ({type(exc).__name__})"
    return _UInt8Inception(network)


class _Given(nn.Module):
    """The identity, as torchmetrics' feature network: the features are computed once, before."""

    def __init__(self, num_features: int) -> None:
        super().__init__()
        self.num_features = num_features

    def forward(self, features: Tensor) -> Tensor:
        return features


class _UInt8Inception(nn.Module):
    """Inception takes uint8 images: converts the [0, 1] floats :func:`feature_distances` passes."""

    num_features = 2048

    def __init__(self, network: nn.Module) -> None:
        super().__init__()
        self.network = network

    def forward(self, images: Tensor) -> Tensor:
        return self.network((images.clamp(0, 1) * 255).round().to(torch.uint8)).reshape(images.shape[0], -1)
