"""Negative prompts after inversion (the reference paper's claim, made observable) and generation."""

import pytest
import torch

from conftest import PROMPT
from diffinv import generate, invert, reconstruct
from diffinv.errors import DiffinvError

STEPS = 8


@pytest.fixture(scope="module")
def inversions(pipe, photo):
    return {
        m: invert(pipe, photo, PROMPT, m, num_inference_steps=STEPS)
        for m in ("ddim", "prompt-tokens", "direct", "null-text", "negative-prompt")
    }


@pytest.mark.parametrize("method", ["ddim", "prompt-tokens", "direct"])
def test_negative_prompt_changes_free_slot_reconstructions(pipe, inversions, method):
    plain = reconstruct(pipe, inversions[method], output_type="pt")
    negative = reconstruct(pipe, inversions[method], negative_prompt="blurry, low quality", output_type="pt")
    assert plain.shape == negative.shape == (1, 3, 64, 64)
    assert (plain - negative).abs().mean() > 1e-3


@pytest.mark.parametrize("method", ["null-text", "negative-prompt"])
def test_negative_prompt_is_refused_when_the_slot_is_occupied(pipe, inversions, method):
    with pytest.raises(DiffinvError, match="occupies the unconditional"):
        reconstruct(pipe, inversions[method], negative_prompt="blurry")


def test_reconstruct_output_types(pipe, inversions):
    inversion = inversions["direct"]
    assert reconstruct(pipe, inversion)[0].size == (64, 64)
    assert reconstruct(pipe, inversion, output_type="np").shape == (1, 64, 64, 3)
    latents = reconstruct(pipe, inversion, output_type="latent")
    assert latents.shape == inversion.source_latents.shape


def test_generate_is_seeded(pipe):
    def run(seed):
        return generate(
            pipe, "a red circle", num_inference_steps=5, generator=torch.Generator().manual_seed(seed), output_type="pt"
        )

    assert torch.equal(run(0), run(0))
    assert not torch.equal(run(0), run(1))
    assert generate(pipe, "x", num_inference_steps=2, height=32, width=48, output_type="np").shape == (1, 32, 48, 3)
    with pytest.raises(DiffinvError, match="num_inference_steps"):
        generate(pipe, "x", num_inference_steps=0)


def test_generate_draws_its_noise_as_diffusers_does(pipe):
    """The same generator gives the same image as diffusers' pipeline (both draw with ``randn_tensor``: on the
    generator's device, so a CPU generator gives the same noise for a model on any device), and a generator on the
    model's device is accepted where the model is on an accelerator."""
    from diffusers import DDIMScheduler, StableDiffusionPipeline

    reference = StableDiffusionPipeline(
        **{**pipe.components, "scheduler": DDIMScheduler.from_config(pipe.scheduler.config)}
    )
    reference.set_progress_bar_config(disable=True)
    expected = reference(
        "a red circle", num_inference_steps=5, generator=torch.Generator().manual_seed(4), output_type="latent"
    ).images
    ours = generate(
        pipe, "a red circle", num_inference_steps=5, generator=torch.Generator().manual_seed(4), output_type="latent"
    )
    torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-5)
    if torch.cuda.is_available():
        on_gpu = StableDiffusionPipeline(**pipe.components).to("cuda")
        generator = torch.Generator("cuda").manual_seed(4)
        assert (
            generate(on_gpu, "a red circle", num_inference_steps=2, generator=generator, output_type="pt")
            .isfinite()
            .all()
        )
        pipe.to("cpu")


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"guidance_scale": float("nan")}, "guidance_scale must be a finite number"),
        ({"guidance_scale": -1.0}, "guidance_scale must be a finite number ≥ 0"),
        ({"height": 0}, "positive multiples"),
        ({"width": 100000}, "pixel budget"),
        ({"num_inference_steps": 1001}, "exceeds the scheduler's 1000 training steps"),
        ({"num_inference_steps": True}, "num_inference_steps must be an integer"),
    ],
)
def test_generate_refuses_bad_numbers(pipe, kwargs, match):
    with pytest.raises(DiffinvError, match=match):
        generate(pipe, "x", **{"num_inference_steps": 2, **kwargs})


def test_optimiser_settings_must_be_finite():
    from diffinv.inversion import OptimizationConfig

    for field in ("learning_rate", "lr_decay", "early_stop_epsilon", "early_stop_growth"):
        for value in (float("inf"), float("nan"), "0.1"):
            with pytest.raises(DiffinvError, match=field):
                OptimizationConfig(**{field: value})


def test_time_limit_stops_a_job_at_its_next_unet_call(pipe):
    from diffinv.denoiser import time_limit

    with time_limit(1e-9), pytest.raises(DiffinvError, match="ran past its time limit of 1e-09 s"):
        generate(pipe, "x", num_inference_steps=2)
    with time_limit(600):
        generate(pipe, "x", num_inference_steps=2)  # well within the limit
    generate(pipe, "x", num_inference_steps=2)  # the limit ends with its context
    with pytest.raises(DiffinvError, match="time limit"):
        with time_limit(0):
            pass


def test_a_result_that_is_not_finite_is_refused(pipe):
    """A broken model or runaway settings give NaN latents: one line, never a black image written as a success."""
    from diffinv.images import to_output

    latents = torch.full((1, 4, 8, 8), float("nan"))
    for output_type in ("latent", "pil"):
        with pytest.raises(DiffinvError, match="not finite"):
            to_output(pipe.vae, latents, output_type)
