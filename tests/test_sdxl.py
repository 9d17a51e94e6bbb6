"""The SDXL family on a tiny seeded SDXL pipeline: encoding and sampling equal diffusers' SDXL pipeline, every
inversion method inverts and reconstructs, the pooled embedding is optimised only where it should be, files and
batches behave as on SD, editing and SDEdit run, loading recognises SDXL folders, and what SDXL cannot do yet is
refused in one line."""

import json

import pytest
import torch
from diffusers import DDIMScheduler, StableDiffusionXLPipeline

from conftest import PROMPT
from diffinv import Inversion, OptimizationConfig, PromptTokensConfig, edit, generate, invert, reconstruct, sdedit
from diffinv.cli import main
from diffinv.conditioning import split_pooled
from diffinv.errors import DiffinvError
from diffinv.inversion import METHODS
from diffinv.metrics import latent_mse
from diffinv.pipelines import fingerprint, load_pipeline
from diffinv.testing import tiny_sdxl_pipeline
from diffinv.text import encode_negative_prompt, encode_prompt

STEPS = 10
POOLED = 32  # the tiny pipeline's pooled width (its hidden states are 64 wide)


@pytest.fixture(scope="module")
def xl():
    return tiny_sdxl_pipeline(seed=0)


@pytest.fixture(scope="module")
def inversions(xl, photo):
    return {method: invert(xl, photo, PROMPT, method, num_inference_steps=STEPS) for method in METHODS}


@pytest.fixture(scope="module")
def xl_folder(tmp_path_factory, xl):
    folder = tmp_path_factory.mktemp("models") / "tiny-xl"
    xl.save_pretrained(folder, safe_serialization=True)
    return folder


def _error(pipe, inversion, **kwargs) -> float:
    rec = reconstruct(pipe, inversion, output_type="latent", **kwargs)
    return latent_mse(rec, inversion.source_latents) / inversion.source_latents.var().item()


def test_prompts_encode_as_diffusers_sdxl_pipeline_does(xl):
    encoded = encode_prompt(xl, PROMPT)
    assert encoded.embeds.shape == (1, 78, 64) and encoded.max_length == 77 and encoded.n_tokens == 8
    hidden, negative, pooled, negative_pooled = xl.encode_prompt(
        PROMPT, device="cpu", do_classifier_free_guidance=True, negative_prompt="blurry"
    )
    ours, our_pooled = split_pooled(encoded.embeds, POOLED)
    torch.testing.assert_close(ours, hidden)
    torch.testing.assert_close(our_pooled, pooled)
    assert torch.equal(encoded.embeds[0, -1, POOLED:], torch.zeros(64 - POOLED))
    ours, our_pooled = split_pooled(encode_negative_prompt(xl, "blurry"), POOLED)
    torch.testing.assert_close(ours, negative)
    torch.testing.assert_close(our_pooled, negative_pooled)
    assert not encode_negative_prompt(xl, None).any()  # force_zeros_for_empty_prompt, as diffusers
    assert encode_negative_prompt(xl, "").any()


def test_generation_equals_diffusers_sdxl_pipeline_with_ddim(xl):
    reference = StableDiffusionXLPipeline(
        **{**xl.components, "scheduler": DDIMScheduler.from_config(xl.scheduler.config)}
    )
    reference.set_progress_bar_config(disable=True)
    noise = torch.randn((1, 4, 8, 8), generator=torch.Generator().manual_seed(3))
    for negative_prompt in (None, "blurry"):
        expected = reference(
            PROMPT,
            negative_prompt=negative_prompt,
            num_inference_steps=8,
            guidance_scale=7.5,
            latents=noise.clone(),
            output_type="latent",
        ).images
        ours = generate(
            xl,
            PROMPT,
            negative_prompt=negative_prompt,
            num_inference_steps=8,
            generator=torch.Generator().manual_seed(3),
            output_type="latent",
        )
        torch.testing.assert_close(ours, expected, rtol=1e-4, atol=1e-5)


def test_every_method_inverts_and_reconstructs(xl, inversions):
    errors = {method: _error(xl, inversion) for method, inversion in inversions.items()}
    assert errors["ddim"] > 0.02  # guidance 7.5 drifts
    for method in ("null-text", "prompt-tokens"):
        assert errors[method] < errors["ddim"] / 2, errors
    assert errors["negative-prompt"] < errors["ddim"] and errors["direct"] < 1e-10, errors


def test_prompt_tokens_paper_preset_optimises_the_semantic_slice_of_both_encoders_only(xl, photo):
    inversion = invert(xl, photo, PROMPT, "prompt-tokens@paper", num_inference_steps=STEPS)
    start = encode_prompt(xl, PROMPT).embeds[0]
    n = inversion.settings.optimized_positions
    assert n == 8 and inversion.negative_slot_free
    embeds = inversion.prompt_embeds
    assert torch.equal(embeds[:, n:], start[n:].expand(STEPS, -1, -1))  # padding and the pooled row never move
    moved = (embeds[:, :n] - start[:n]).abs().amax(dim=(0, 1))
    assert moved[:32].min() > 0 and moved[32:].min() > 0  # both encoders' halves of every free position
    assert inversion.stats.optimized_params == n * 64 * STEPS


def test_prompt_tokens_optimises_the_pooled_embedding_by_default(xl, inversions):
    inversion = inversions["prompt-tokens"]
    start = encode_prompt(xl, PROMPT).embeds[0]
    pooled = inversion.prompt_embeds[:, -1]
    assert not torch.equal(pooled[:, :POOLED], start[-1, :POOLED].expand(STEPS, -1))
    assert not pooled[:, POOLED:].any()  # its padding is not a parameter
    assert inversion.settings.optimized_positions == 9
    assert inversion.stats.optimized_params == (8 * 64 + POOLED) * STEPS
    assert _error(xl, inversion) < _error(xl, inversions["ddim"]) / 10  # measured 0.0063 vs 0.178


def test_null_text_optimises_both_unconditional_halves_and_the_pooled_embedding(xl, inversions):
    inversion = inversions["null-text"]
    uncond = inversion.negative_prompt_embeds
    assert uncond.shape == (STEPS, 78, 64)
    assert uncond[:, :77, :32].any() and uncond[:, :77, 32:].any() and uncond[:, -1, :POOLED].any()
    assert not uncond[:, -1, POOLED:].any()
    assert inversion.stats.optimized_params == (77 * 64 + POOLED) * STEPS


def test_negative_prompts_work_after_methods_that_leave_the_slot_free(xl, inversions):
    inversion = inversions["prompt-tokens"]
    plain = reconstruct(xl, inversion, output_type="latent")
    assert not torch.allclose(plain, reconstruct(xl, inversion, negative_prompt="blurry", output_type="latent"))
    with pytest.raises(DiffinvError, match="occupies the unconditional"):
        reconstruct(xl, inversions["null-text"], negative_prompt="blurry")


def test_files_round_trip_and_are_refused_by_another_family(xl, pipe, inversions, tmp_path):
    for method, inversion in inversions.items():
        loaded = Inversion.load(inversion.save(tmp_path / f"{method}.inv.safetensors"), xl)
        assert torch.equal(
            reconstruct(xl, loaded, output_type="latent"), reconstruct(xl, inversion, output_type="latent")
        )
    with pytest.raises(DiffinvError, match="made with another model"):
        Inversion.load(tmp_path / "ddim.inv.safetensors", pipe)


def test_batched_sdxl_inversion_equals_one_at_a_time(photo):
    xl64 = tiny_sdxl_pipeline(seed=0, dtype=torch.float64)
    prompts = [PROMPT, "coffee"]
    config = PromptTokensConfig(num_inference_steps=4, optimization=OptimizationConfig(num_inner_steps=3), pooled=True)
    together = invert(xl64, [photo, photo.rotate(90)], prompts, "prompt-tokens", config=config)
    for image, prompt, result in zip([photo, photo.rotate(90)], prompts, together, strict=True):
        alone = invert(xl64, image, prompt, "prompt-tokens", config=config)
        torch.testing.assert_close(result.prompt_embeds, alone.prompt_embeds, rtol=1e-9, atol=1e-11)
        torch.testing.assert_close(result.latents, alone.latents, rtol=1e-9, atol=1e-11)


def test_identity_edit_reproduces_the_reconstruction_and_edits_run(xl, inversions):
    for method in ("prompt-tokens", "null-text", "direct"):
        inversion = inversions[method]
        expected = reconstruct(xl, inversion, output_type="latent")
        offsets = "both" if method == "direct" else "source"  # DirectInversion's offsets on the target branch too
        result = edit(xl, inversion, PROMPT, latent_offsets=offsets, output_type="latent")
        torch.testing.assert_close(result.edit, expected, atol=1e-5 * float(expected.abs().max()), rtol=0)
    changed = edit(xl, inversions["prompt-tokens"], "a man in a space suit", local_blend=["woman", "man"])
    assert changed.edit[0].size == (64, 64) and changed.mask is not None
    refined = edit(xl, inversions["prompt-tokens"], "a woman in a red space suit", mode="refine", output_type="pt")
    assert torch.isfinite(refined.edit).all()


def test_sdedit_runs(xl, photo):
    image = sdedit(xl, photo, PROMPT, strength=0.6, num_inference_steps=STEPS, output_type="pt")
    assert image.shape == (1, 3, 64, 64) and torch.isfinite(image).all()


def test_sdxl_folders_load_as_sdxl(xl, xl_folder):
    loaded = load_pipeline(xl_folder)
    assert isinstance(loaded, StableDiffusionXLPipeline)
    assert fingerprint(loaded) == fingerprint(xl)
    half = load_pipeline(xl_folder, dtype="fp16")
    assert half.unet.dtype == torch.float16 and half.vae.dtype == torch.float32  # SDXL's VAE overflows in fp16


def test_sdxl_refiners_are_refused_in_one_line(xl, tmp_path):
    folder = tmp_path / "refiner"
    refiner = StableDiffusionXLPipeline(**{**xl.components, "text_encoder": None, "tokenizer": None})
    refiner.save_pretrained(folder, safe_serialization=True)
    index = json.loads((folder / "model_index.json").read_text())
    assert index["text_encoder"] == [None, None]
    with pytest.raises(DiffinvError, match="without both text encoders") as info:
        load_pipeline(folder)
    assert "\n" not in str(info.value)


def test_concepts_are_refused_on_sdxl_in_one_line(xl, photo):
    from diffinv import learn_concept, load_concept
    from diffinv.personalization import Concept

    with pytest.raises(DiffinvError, match="SDXL's two text encoders are not supported yet"):
        learn_concept(xl, [photo], "<x>", "circle", steps=1)
    with pytest.raises(DiffinvError, match="SDXL's two text encoders"):
        load_concept(xl, Concept(token="<x>", embeds=torch.zeros(1, 32)))


def test_cli_inverts_and_reconstructs_with_an_sdxl_folder(xl_folder, photo_path, tmp_path, capsys):
    out = tmp_path / "a.inv.safetensors"
    args = ["invert", photo_path, "--prompt", PROMPT, "--model", str(xl_folder), "--steps", "3", "--no-pooled"]
    assert main([*args, "-o", str(out)]) == 0
    assert not Inversion.load(out).settings.config.pooled
    assert main(["reconstruct", str(out), "--model", str(xl_folder), "-o", str(tmp_path / "r.png")]) == 0
    assert (tmp_path / "r.png").is_file()


def test_single_file_checkpoints_in_the_original_sdxl_layout_load_as_sdxl(tmp_path):
    from diffusers import StableDiffusionPipeline
    from safetensors.torch import save_file

    from diffinv import pipelines

    sdxl, sd = tmp_path / "xl.safetensors", tmp_path / "sd.safetensors"
    save_file({"conditioner.embedders.1.model.text_projection": torch.zeros(2, 2)}, str(sdxl))
    save_file({"cond_stage_model.transformer.text_model.embeddings.position_ids": torch.zeros(2)}, str(sd))
    assert pipelines._single_file_class(sdxl) is StableDiffusionXLPipeline
    assert pipelines._single_file_class(sd) is StableDiffusionPipeline
