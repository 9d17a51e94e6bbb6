"""SDEdit: the t0 limits, masks, repeats, compositing, seeding and every refusal."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import PROMPT
from diffinv import sdedit
from diffinv.editing.config import SDEditConfig
from diffinv.editing.sdedit import paste
from diffinv.errors import DiffinvError


def _seed(n: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(n)


def test_a_strength_that_runs_no_step_is_refused(pipe, photo):
    """round-down(0.01 · 10) = 0 steps would silently return the guide's VAE round trip."""
    with pytest.raises(DiffinvError, match="strength 0.01 of 10 steps runs no step"):
        sdedit(pipe, photo, PROMPT, strength=0.01, num_inference_steps=10, output_type="pt")
    assert SDEditConfig(strength=0.1, num_inference_steps=10).start_step == 9


def test_strength_runs_that_share_of_the_steps_and_is_seeded(pipe, photo):
    assert SDEditConfig(strength=0.5, num_inference_steps=10).start_step == 5
    assert SDEditConfig(strength=1.0, num_inference_steps=10).start_step == 0
    calls = []
    handle = pipe.unet.register_forward_hook(lambda *args: calls.append(1))
    try:
        first = sdedit(pipe, photo, PROMPT, strength=0.5, num_inference_steps=10, generator=_seed(), output_type="pt")
    finally:
        handle.remove()
    assert len(calls) == 5
    again = sdedit(pipe, photo, PROMPT, strength=0.5, num_inference_steps=10, generator=_seed(), output_type="pt")
    other = sdedit(pipe, photo, PROMPT, strength=0.5, num_inference_steps=10, generator=_seed(1), output_type="pt")
    assert torch.equal(first, again) and not torch.equal(first, other)


def test_masked_sdedit_keeps_the_pixels_outside_the_mask(pipe, photo):
    guide = photo.resize((64, 64))
    mask = np.zeros((64, 64), np.uint8)
    mask[16:40, 8:48] = 255
    out = sdedit(pipe, guide, PROMPT, strength=0.8, mask=Image.fromarray(mask), num_inference_steps=10,
                 generator=_seed(), output_type="np")[0]  # fmt: skip
    result = (out * 255).round().astype(int)
    original = np.asarray(guide).astype(int)
    assert np.array_equal(result[mask == 0], original[mask == 0])
    assert np.abs(result[mask > 0] - original[mask > 0]).mean() > 2


def test_a_mask_painted_on_a_transparent_layer_is_read_from_its_alpha(pipe, photo):
    guide = photo.resize((64, 64))
    painted = np.zeros((64, 64, 4), np.uint8)  # transparent, with red strokes (not white) in the region
    painted[16:40, 8:48] = (255, 0, 0, 255)
    grey = np.zeros((64, 64), np.uint8)
    grey[16:40, 8:48] = 255
    run = {"num_inference_steps": 10, "strength": 0.8, "output_type": "np"}
    from_alpha = sdedit(pipe, guide, PROMPT, mask=Image.fromarray(painted), generator=_seed(), **run)[0]
    from_grey = sdedit(pipe, guide, PROMPT, mask=Image.fromarray(grey), generator=_seed(), **run)[0]
    assert np.array_equal(from_alpha, from_grey)
    opaque = painted.copy()
    opaque[..., 3] = 255  # no transparency: read from its colours as before (red → grey 76 of 255)
    partly = sdedit(pipe, guide, PROMPT, mask=Image.fromarray(opaque), generator=_seed(), **run)[0]
    assert not np.array_equal(partly, from_grey)


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_posterior_sample_gives_diffusers_img2img_for_the_same_seed(pipe, photo, eta):
    from diffusers import DDIMScheduler, StableDiffusionImg2ImgPipeline

    reference = StableDiffusionImg2ImgPipeline(
        **{**pipe.components, "scheduler": DDIMScheduler.from_config(pipe.scheduler.config)}
    )
    reference.set_progress_bar_config(disable=True)
    guide = photo.resize((64, 64))
    settings = {"strength": 0.6, "num_inference_steps": 10, "eta": eta, "output_type": "latent"}
    expected = reference(PROMPT, image=guide, generator=_seed(3), **settings).images
    ours = sdedit(pipe, guide, PROMPT, posterior="sample", generator=_seed(3), **settings)
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-5)
    mean = sdedit(pipe, guide, PROMPT, generator=_seed(3), **settings)  # the default encodes the posterior mean
    assert not torch.allclose(mean, expected, rtol=1e-4, atol=1e-5)


def test_repeats_perturb_and_denoise_again(pipe, photo):
    once = sdedit(pipe, photo, PROMPT, strength=0.5, num_inference_steps=6, generator=_seed(), output_type="pt")
    twice = sdedit(pipe, photo, PROMPT, strength=0.5, repeats=2, num_inference_steps=6, generator=_seed(),
                   output_type="pt")  # fmt: skip
    assert not torch.allclose(once, twice)


def test_paste_builds_a_composite_and_its_mask(photo):
    base = Image.new("RGB", (64, 48), "white")
    patch = photo.resize((20, 10))
    guide, mask = paste(base, patch, 50, 40)
    assert guide.size == base.size and guide.getpixel((55, 45)) == patch.getpixel((5, 5))
    region = np.asarray(mask) > 0
    assert region.sum() == 14 * 8 and region[40:, 50:].all()
    with pytest.raises(DiffinvError, match="outside"):
        paste(base, patch, 64, 0)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"strength": 0.0}, r"strength \(t0\) must be a finite number > 0 and ≤ 1"),
        ({"strength": 1.5}, r"strength \(t0\) must be a finite number > 0 and ≤ 1"),
        ({"repeats": 0}, "repeats must be an integer ≥ 1"),
        ({"num_inference_steps": 0}, "num_inference_steps must be an integer ≥ 1"),
        ({"guidance_scale": float("nan")}, "guidance_scale"),
        ({"eta": 2.0}, "eta must be a finite number ≥ 0 and ≤ 1"),
        ({"posterior": "mode"}, "posterior must be one of mean, sample"),
        ({"mask": Image.new("L", (10, 10))}, "give a mask of the guide's size"),
        ({"output_type": "jpeg"}, "unknown output_type"),
    ],
)
def test_bad_sdedit_input_is_refused(pipe, photo, kwargs, match):
    with pytest.raises(DiffinvError, match=match):
        sdedit(pipe, photo, PROMPT, **kwargs)


def test_a_mask_that_is_not_an_image_is_refused(pipe, photo, tmp_path):
    bad = tmp_path / "mask.png"
    bad.write_bytes(b"not an image")
    with pytest.raises(DiffinvError, match="not a readable image"):
        sdedit(pipe, photo, PROMPT, mask=bad)
