import io
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

from diffinv import images
from diffinv.errors import DiffinvError


def _save(tmp_path, image: Image.Image, name: str, **kwargs) -> str:
    path = tmp_path / name
    image.save(path, **kwargs)
    return str(path)


@pytest.mark.parametrize(
    ("mode", "value", "expected"),
    [
        ("RGB", (10, 20, 30), (10, 20, 30)),
        ("L", 77, (77, 77, 77)),
        ("RGBA", (200, 0, 0, 0), (255, 255, 255)),  # fully transparent → white background
        ("LA", (0, 255), (0, 0, 0)),
        ("CMYK", (0, 0, 0, 0), (255, 255, 255)),
    ],
)
def test_modes_become_rgb(tmp_path, mode, value, expected):
    suffix = "jpg" if mode == "CMYK" else "png"
    path = _save(tmp_path, Image.new(mode, (8, 8), value), f"x.{suffix}")
    image = images.open_image(path)
    assert image.mode == "RGB"
    assert np.allclose(np.asarray(image)[0, 0], expected, atol=2)


def test_palette_with_transparency_and_16_bit(tmp_path):
    palette = Image.new("P", (4, 4), 0)
    palette.putpalette([255, 0, 0] * 256)
    palette.info["transparency"] = 0
    assert np.asarray(images.open_image(_save(tmp_path, palette, "p.png", transparency=0)))[0, 0].tolist() == [255] * 3
    wide = Image.fromarray(np.full((4, 4), 65535, dtype=np.uint16))
    assert np.asarray(images.open_image(_save(tmp_path, wide, "w.png")))[0, 0].tolist() == [255] * 3
    half = Image.fromarray(np.full((4, 4), 32768, dtype=np.uint16))
    assert abs(int(np.asarray(images.open_image(_save(tmp_path, half, "h.png")))[0, 0, 0]) - 128) <= 1


def test_exif_orientation_is_applied(tmp_path):
    array = np.zeros((10, 20, 3), dtype=np.uint8)
    array[:, :10] = 255  # left half white
    image = Image.fromarray(array)
    exif = image.getexif()
    exif[0x0112] = 6  # rotate 90° clockwise on display
    path = _save(tmp_path, image, "r.jpg", exif=exif.tobytes(), quality=95)
    shown = np.asarray(images.open_image(path))
    assert shown.shape[:2] == (20, 10)
    assert shown[:10].mean() > 200 and shown[10:].mean() < 50  # the white half is now on top


@pytest.mark.parametrize(
    ("content", "message"),
    [(b"", "empty"), (b"this is not an image", "not a readable image"), (None, "no such file")],
)
def test_bad_files_are_refused(tmp_path, content, message):
    path = tmp_path / "bad.png"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(DiffinvError, match=message):
        images.open_image(path)


def test_truncated_file_is_refused(tmp_path, photo):
    buffer = io.BytesIO()
    photo.save(buffer, format="PNG")
    path = tmp_path / "cut.png"
    path.write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    with pytest.raises(DiffinvError, match="could not be decoded|not a readable image"):
        images.open_image(path)


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    path = _save(tmp_path, Image.new("RGB", (100, 100)), "big.png")
    monkeypatch.setattr(images, "MAX_IMAGE_PIXELS", 5000)
    with pytest.raises(DiffinvError, match="pixel limit"):
        images.open_image(path)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 4000)
    with warnings.catch_warnings(), pytest.raises(DiffinvError, match="not a readable image"):
        warnings.simplefilter("error")
        images.open_image(path)


def test_prepare_image_center_crops_and_scales():
    array = np.zeros((40, 80, 3), dtype=np.uint8)
    array[:, 20:60] = 255  # the centre square is white, the sides black
    pixels = images.prepare_image(Image.fromarray(array), 16, 16)
    assert pixels.shape == (1, 3, 16, 16) and pixels.dtype == torch.float32
    assert pixels.mean() > 0.97 and pixels.min() > 0.8  # the white centre survives the crop (Lanczos rings at the edge)


def test_size_must_be_a_multiple_of_the_vae_factor():
    with pytest.raises(DiffinvError, match="multiples of 8"):
        images.check_size(60, 64, 8)


def test_output_types(pipe):
    latents = torch.zeros(1, 4, 8, 8)
    assert isinstance(images.to_output(pipe.vae, latents, "pil")[0], Image.Image)
    assert images.to_output(pipe.vae, latents, "np").shape == (1, 64, 64, 3)
    assert images.to_output(pipe.vae, latents, "pt").shape == (1, 3, 64, 64)
    assert images.to_output(pipe.vae, latents, "latent") is latents
    with pytest.raises(DiffinvError, match="output_type"):
        images.to_output(pipe.vae, latents, "jpeg")


@pytest.mark.parametrize("source", [None, 5, b"photo.png", np.zeros((4, 4, 3), np.uint8)])
def test_an_image_that_is_neither_a_path_nor_a_pil_image_is_refused(source):
    with pytest.raises(DiffinvError, match="an image must be a path or a PIL image, got"):
        images.open_image(source)
