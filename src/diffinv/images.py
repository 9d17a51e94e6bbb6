"""Image input/output: reading any photo safely, and moving between pixels and VAE latents.

Pixel tensors are ``(B, 3, H, W)`` in ``[-1, 1]``; latents are ``(B, C, H/f, W/f)`` already multiplied by the
VAE's ``scaling_factor`` (Rombach et al. 2022, Sec. 4.3 / Appendix G), as Stable Diffusion's UNet expects.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from diffusers import AutoencoderKL
from PIL import Image, ImageOps, UnidentifiedImageError
from torch import Tensor

from diffinv.errors import DiffinvError
from diffinv.io import check_input_file

MAX_SIDE = 8192
MAX_PIXELS = 2048 * 2048

OutputType = Literal["pil", "np", "pt", "latent"]
OUTPUT_TYPES: tuple[str, ...] = ("pil", "np", "pt", "latent")
NOT_FINITE = (
    "the result is not finite (NaN or inf): the settings are too extreme for this model (a huge guidance or word "
    "scale, an optimiser that diverged) or its weights or scheduler config are broken"
)
# Pillow's decompression-bomb guard, made strict: an image above this many pixels is refused.
MAX_IMAGE_PIXELS = 89_478_485
# Modes whose samples are wider than 8 bits; scaled by their full range, not clipped.
ALPHA_MODES = ("RGBA", "LA", "PA", "RGBa", "La")
WIDE_MODES = {"I;16": 65535.0, "I;16B": 65535.0, "I;16L": 65535.0, "I;16N": 65535.0}


def open_image(source: str | Path | Image.Image) -> Image.Image:
    """Read an image as 8-bit RGB, with EXIF orientation applied.

    Any mode Pillow reads is accepted: transparency is composited on white; 16-bit and float images are scaled by
    their range; CMYK, palette and grayscale images are converted. Empty, truncated, unreadable or oversized
    (decompression-bomb) files raise :class:`DiffinvError`.
    """
    return _to_rgb(_read(source))


def open_mask(source: str | Path | Image.Image) -> Image.Image:
    """Read a mask (white where an image may change) as 8-bit RGB, with :func:`open_image`'s checks.

    A mask with transparent pixels (strokes painted on a transparent layer, as image editors save them) is read
    from its alpha channel, painted = may change: composited on white, as :func:`open_image` does, all of it would
    be white and the whole image would change. An opaque mask is read from its colours.
    """
    image = _read(source)
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ALPHA_MODES:
        alpha = image.convert("RGBA").getchannel("A")
        if alpha.getextrema()[0] < 255:
            return alpha.convert("RGB")
    return _to_rgb(image)


def _read(source: str | Path | Image.Image) -> Image.Image:
    """The image at ``source`` (or ``source`` itself), checked, decoded, EXIF orientation applied, any mode."""
    if isinstance(source, Image.Image):
        image = source
        name = "the image"
    elif not isinstance(source, str | Path):
        raise DiffinvError(f"an image must be a path or a PIL image, got {type(source).__name__}")
    else:
        path = Path(source)
        name = str(path)
        check_input_file(path)
        if path.stat().st_size == 0:
            raise DiffinvError(f"{name}: the file is empty")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                image = Image.open(path)
                if image.width * image.height > MAX_IMAGE_PIXELS:
                    raise DiffinvError(
                        f"{name}: {image.width}×{image.height} pixels exceeds the {MAX_IMAGE_PIXELS:,}-pixel limit"
                    )
                image.load()
        except DiffinvError:
            raise
        except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            raise DiffinvError(f"{name}: not a readable image ({_reason(exc)})") from None
        except (OSError, SyntaxError, ValueError) as exc:
            raise DiffinvError(f"{name}: the image could not be decoded ({_reason(exc)})") from None
    try:
        image = ImageOps.exif_transpose(image)
    except (OSError, ValueError, SyntaxError):
        pass  # a corrupt EXIF block only loses the orientation hint; the pixels are fine
    return image


def _reason(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _to_rgb(image: Image.Image) -> Image.Image:
    if image.mode in WIDE_MODES or image.mode in ("I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = WIDE_MODES.get(image.mode) or (65535.0 if array.max(initial=0) > 255 else 255.0)
        if image.mode == "F":
            top = max(1.0, float(array.max(initial=0)))
        gray = np.clip(array / top * 255.0 + 0.5, 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ALPHA_MODES:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def prepare_image(image: Image.Image, height: int, width: int) -> Tensor:
    """Center-crop ``image`` to the target aspect ratio, resize (Lanczos) to ``height×width``; ``(1, 3, H, W)``
    float32 in ``[-1, 1]``."""
    fitted = ImageOps.fit(image, (width, height), method=Image.Resampling.LANCZOS, centering=(0.5, 0.5))
    array = np.asarray(fitted, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).unsqueeze(0).contiguous()


def check_size(height: int, width: int, multiple: int) -> None:
    """Refuse sizes that are not positive multiples of ``multiple`` or exceed the pixel budget (``MAX_SIDE`` per
    side, ``MAX_PIXELS`` in all: 2048×2048, four times SDXL's native size — beyond it a typo runs until killed)."""
    if height <= 0 or width <= 0 or height % multiple or width % multiple:
        raise DiffinvError(f"height and width must be positive multiples of {multiple}, got {height}×{width}")
    if max(height, width) > MAX_SIDE or height * width > MAX_PIXELS:
        raise DiffinvError(
            f"{height}×{width} exceeds the pixel budget ({MAX_SIDE} per side, {MAX_PIXELS / 1e6:.1f} MP in all)"
        )


@torch.no_grad()
def encode(
    vae: AutoencoderKL, pixels: Tensor, *, sample: bool = False, generator: torch.Generator | None = None
) -> Tensor:
    """``(B, 3, H, W)`` pixels in [-1, 1] → scaled latents ``(B, C, H/f, W/f)`` in float32 (float64 for a float64
    VAE): the posterior mean, as in Mokady et al. 2022's reference code, or with ``sample`` a draw from the posterior
    with ``generator``, as diffusers' img2img pipeline encodes its image."""
    out_dtype = torch.float64 if vae.dtype == torch.float64 else torch.float32
    posterior = vae.encode(pixels.to(vae.device, vae.dtype)).latent_dist
    latents = posterior.sample(generator) if sample else posterior.mean
    return (latents * vae.config.scaling_factor).to(out_dtype)


@torch.no_grad()
def decode(vae: AutoencoderKL, latents: Tensor) -> Tensor:
    """Scaled latents ``(B, C, h, w)`` → pixels ``(B, 3, H, W)`` float32 in [0, 1]."""
    pixels = vae.decode(latents.to(vae.device, vae.dtype) / vae.config.scaling_factor).sample
    return (pixels.float() / 2 + 0.5).clamp(0, 1)


def check_output_type(output_type: str) -> None:
    """Raise :class:`DiffinvError` unless ``output_type`` is one of :data:`OUTPUT_TYPES`."""
    if output_type not in OUTPUT_TYPES:
        raise DiffinvError(f"unknown output_type {output_type!r}; choose one of {', '.join(OUTPUT_TYPES)}")


def to_output(vae: AutoencoderKL, latents: Tensor, output_type: str) -> list[Image.Image] | np.ndarray | Tensor:
    """Decode to diffusers' output types: ``pil`` (list of images), ``np`` ``(B, H, W, 3)`` float in [0, 1],
    ``pt`` ``(B, 3, H, W)`` float in [0, 1], or ``latent`` (the latents themselves)."""
    check_output_type(output_type)
    if not latents.isfinite().all():
        raise DiffinvError(NOT_FINITE)
    if output_type == "latent":
        return latents
    pixels = decode(vae, latents)
    if not pixels.isfinite().all():
        raise DiffinvError(NOT_FINITE)
    return pixels_to_output(pixels, output_type)


def pixels_to_output(pixels: Tensor, output_type: str) -> list[Image.Image] | np.ndarray | Tensor:
    """Pixels ``(B, 3, H, W)`` in [0, 1] as ``pil``, ``np`` or ``pt`` (see :func:`to_output`)."""
    if output_type == "pt":
        return pixels
    array = pixels.permute(0, 2, 3, 1).cpu().numpy()
    if output_type == "np":
        return array
    return [Image.fromarray((a * 255).round().astype(np.uint8)) for a in array]
