"""Batched inversion and reconstruction equal one-at-a-time results, for every method.

A float64 tiny pipeline makes batch and single UNet calls agree to ~1e-15, so every early-stop decision is the same
and any difference beyond rounding is a bug (an image moved by another's gradient or by Adam's momentum after it
stopped, a wrong semantic slice, rows swapped). The three prompts have different token counts and the early-stop
threshold is set so that the images stop after different numbers of inner iterations.
"""

import pytest
import skimage.data
import torch
from PIL import Image

from diffinv import OptimizationConfig, edit, invert, reconstruct
from diffinv.errors import DiffinvError
from diffinv.inversion import METHODS, InversionConfig, OptimizingInversionConfig
from diffinv.testing import tiny_pipeline

STEPS = 6
PROMPTS = ["a woman in a space suit", "coffee", "a grey wall seen from very far away at dusk"]
# stop once the latent MSE is below 1.5e-3: measured on these images, some stop after 1-9 iterations, others never
EARLY_STOP = OptimizationConfig(early_stop_epsilon=1.5e-3, early_stop_growth=0.0)


@pytest.fixture(scope="module")
def pipe64():
    return tiny_pipeline(seed=0, dtype=torch.float64)


@pytest.fixture(scope="module")
def photos():
    return [
        Image.fromarray(skimage.data.astronaut()),
        Image.fromarray(skimage.data.coffee()),
        Image.new("RGB", (64, 64), (120, 130, 140)),
    ]


def _config(method: str) -> InversionConfig:
    config_class = METHODS[method].config_class
    if issubclass(config_class, OptimizingInversionConfig):
        return config_class(num_inference_steps=STEPS, optimization=EARLY_STOP)
    return config_class(num_inference_steps=STEPS)


def _same(a, b, what):
    if a is None or b is None:
        assert a is None and b is None, what
        return
    assert a.shape == b.shape, what
    torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11, msg=what)


@pytest.mark.parametrize("method", list(METHODS))
def test_batched_inversion_equals_one_at_a_time(pipe64, photos, method):
    config = _config(method)
    batched = invert(pipe64, photos, PROMPTS, method, config=config, batch_size=2)  # a batch of 2, then 1
    assert len(batched) == len(photos)
    for photo, prompt, together in zip(photos, PROMPTS, batched, strict=True):
        alone = invert(pipe64, photo, prompt, method, config=config)
        assert together.settings == alone.settings
        for key in ("latents", "prompt_embeds", "negative_prompt_embeds", "latent_offsets", "source_latents"):
            _same(getattr(together, key), getattr(alone, key), f"{method} {prompt!r}: {key}")
        for key in ("unet_passes", "optimized_params", "inner_steps"):
            assert getattr(together.stats, key) == getattr(alone.stats, key), (method, key)
    if method in ("null-text", "prompt-tokens"):  # the test exercises per-image early stopping
        steps = [r.stats.inner_steps for r in batched]
        assert any(0 < n < 10 for s in steps for n in s) and len(set(steps)) > 1, steps


def test_prompt_tokens_optimises_each_images_own_slice(pipe64, photos):
    results = invert(pipe64, photos, PROMPTS, "prompt-tokens", config=_config("prompt-tokens"))
    counts = [r.settings.optimized_positions for r in results]
    assert len(set(counts)) == 3
    for result, count in zip(results, counts, strict=True):
        untouched = result.prompt_embeds[:, count:]
        assert torch.equal(untouched, untouched[:1].expand_as(untouched))  # positions past the slice never move
        assert not torch.equal(result.prompt_embeds[0, :count], result.prompt_embeds[-1, :count])


def test_batched_reconstruction_equals_single(pipe64, photos):
    mixed = [
        invert(pipe64, photos[0], PROMPTS[0], "direct", num_inference_steps=STEPS),
        invert(pipe64, photos[1], PROMPTS[1], "null-text", config=_config("null-text")),
        invert(pipe64, photos[2], PROMPTS[2], "prompt-tokens", config=_config("prompt-tokens")),
        invert(pipe64, photos[0], PROMPTS[0], "ddim", num_inference_steps=STEPS),
    ]
    negatives = ["blurry", None, "a red square", None]
    together = reconstruct(pipe64, mixed, negative_prompt=negatives, batch_size=3, output_type="latent")
    assert together.shape[0] == 4
    for row, (inversion, negative) in enumerate(zip(mixed, negatives, strict=True)):
        alone = reconstruct(pipe64, inversion, negative_prompt=negative, output_type="latent")
        torch.testing.assert_close(together[row : row + 1], alone, rtol=1e-9, atol=1e-11)
    assert len(reconstruct(pipe64, mixed, output_type="pil")) == 4


def test_one_prompt_for_all_images(pipe, photos):
    results = invert(pipe, photos[:2], "a photo", "ddim", num_inference_steps=2)
    assert [r.settings.prompt for r in results] == ["a photo", "a photo"]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda pipe, photos: invert(pipe, [], "x", "ddim"), "no images"),
        (lambda pipe, photos: invert(pipe, photos, ["a", "b"], "ddim"), "3 images but 2 prompts"),
        (lambda pipe, photos: invert(pipe, photos, ["a", "b", 3], "ddim"), "must be a string"),
        (lambda pipe, photos: invert(pipe, photos, ["a", "", "c"], "prompt-tokens"), "non-empty prompt"),
        (lambda pipe, photos: invert(pipe, photos, "a", "ddim", batch_size=0), "batch_size"),
        (lambda pipe, photos: reconstruct(pipe, []), "no inversions"),
    ],
)
def test_bad_batches_raise(pipe, photos, call, message):
    with pytest.raises(DiffinvError, match=message):
        call(pipe, photos)


def test_reconstructing_mismatched_inversions_together_is_refused(pipe, photos):
    a = invert(pipe, photos[0], "a", "ddim", num_inference_steps=2)
    b = invert(pipe, photos[1], "b", "ddim", num_inference_steps=3)
    with pytest.raises(DiffinvError, match="must share the number of steps"):
        reconstruct(pipe, [a, b])
    with pytest.raises(DiffinvError, match="list of 2"):
        reconstruct(pipe, [a, a], negative_prompt=["x"])


def test_a_list_of_inversions_edits_like_one_at_a_time(pipe, photos):
    inversions = invert(pipe, photos[:2], ["a woman in a space suit", "coffee"], "ddim", num_inference_steps=3)
    targets = ["a man in a space suit", "tea"]
    together = edit(pipe, inversions, targets, negative_prompt=[None, "blurry"], output_type="pt")
    assert len(together) == 2
    for inversion, target, negative, result in zip(inversions, targets, [None, "blurry"], together, strict=True):
        alone = edit(pipe, inversion, target, negative_prompt=negative, output_type="pt")  # batched: float rounding
        assert torch.allclose(result.edit, alone.edit, atol=1e-4, rtol=0)
        assert torch.allclose(result.source, alone.source, atol=1e-4, rtol=0)
    with pytest.raises(DiffinvError, match="2 inversions but 1 prompts"):
        edit(pipe, inversions, ["x"])
