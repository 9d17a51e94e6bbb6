"""Reconstruction properties of every inversion method on tiny seeded SD pipelines.

Factors measured on `tiny_pipeline(seed=0)` with the astronaut photo at 25 steps, guidance 7.5 (relative latent
MSE): ddim 1.4e-1, null-text 1.1e-2 (13×), prompt-tokens 4.4e-3 (32×; its `paper` preset, Mokady et al.'s lr 1e-2:
9.7e-2, 1.4×; 19× with tokens="all"). The assertions keep a margin below those factors.
"""

import pytest
import torch

from conftest import PROMPT
from diffinv import InversionConfig, OptimizationConfig, invert, reconstruct
from diffinv.errors import DiffinvError
from diffinv.inversion import METHODS, OptimizingInversionConfig, PromptTokensConfig, resolve_method
from diffinv.metrics import latent_mse
from diffinv.testing import tiny_pipeline
from diffinv.text import encode_prompt

STEPS = 25


def _error(pipe, inversion) -> float:
    rec = reconstruct(pipe, inversion, output_type="latent")
    return latent_mse(rec, inversion.source_latents) / inversion.source_latents.var().item()


@pytest.fixture(scope="module")
def results(pipe, photo):
    out = {}
    for method in ("ddim", "null-text", "prompt-tokens", "negative-prompt", "direct"):
        inversion = invert(pipe, photo, PROMPT, method, num_inference_steps=STEPS)
        out[method] = (inversion, _error(pipe, inversion))
    return out


def test_ddim_inversion_at_guidance_1_reconstructs(pipe, photo):
    inversion = invert(pipe, photo, PROMPT, "ddim", num_inference_steps=50, guidance_scale=1.0)
    assert _error(pipe, inversion) < 5e-3  # measured 5.5e-4


def test_guidance_makes_ddim_drift_and_optimisation_fixes_it(results):
    ddim = results["ddim"][1]
    assert ddim > 0.05  # the drift the optimising methods exist to fix
    assert results["null-text"][1] < ddim / 5
    assert results["prompt-tokens"][1] < ddim / 5


def test_prompt_tokens_over_all_positions_closes_more_of_the_gap(pipe, photo, results):
    config = PromptTokensConfig(num_inference_steps=STEPS, tokens="all", optimization=OptimizationConfig())
    inversion = invert(pipe, photo, PROMPT, "prompt-tokens", config=config)
    assert inversion.settings.optimized_positions == 77
    assert _error(pipe, inversion) < results["ddim"][1] / 5


def test_default_prompt_tokens_beats_the_paper_preset(pipe, photo, results):
    paper = invert(pipe, photo, PROMPT, "prompt-tokens@paper", num_inference_steps=STEPS)
    assert paper.settings.method == "prompt-tokens"
    assert results["prompt-tokens"][1] < _error(pipe, paper) / 5


def test_negative_prompt_inversion_equals_ddim_at_guidance_1(results):
    assert results["negative-prompt"][1] < 1e-2
    inversion = results["negative-prompt"][0]
    assert torch.equal(inversion.negative_prompt_embeds, inversion.prompt_embeds)


def test_direct_inversion_is_exact(results):
    assert results["direct"][1] < 1e-8  # float32: measured 0 / 5e-22


def test_direct_inversion_is_exact_in_float64(photo):
    pipe64 = tiny_pipeline(seed=0, dtype=torch.float64)
    inversion = invert(pipe64, photo, PROMPT, "direct", num_inference_steps=STEPS)
    assert inversion.latents.dtype == torch.float64
    rec = reconstruct(pipe64, inversion, output_type="latent")
    assert latent_mse(rec, inversion.source_latents) <= 1e-10


def test_prompt_tokens_touches_only_the_semantic_slice(pipe, results):
    inversion = results["prompt-tokens"][0]
    encoded = encode_prompt(pipe, PROMPT)
    n = encoded.n_tokens
    assert inversion.settings.optimized_positions == n == 8
    assert inversion.prompt_embeds.shape == (STEPS, 77, 32)
    padding = encoded.embeds[:, n:].expand(STEPS, -1, -1)
    assert torch.equal(inversion.prompt_embeds[:, n:], padding)  # bit-identical
    assert not torch.equal(inversion.prompt_embeds[:, :n], encoded.embeds[:, :n].expand(STEPS, -1, -1))
    assert inversion.negative_prompt_embeds is None and inversion.negative_slot_free
    assert inversion.stats.optimized_params == n * 32 * STEPS


def test_null_text_touches_only_the_unconditional_slot(pipe, results):
    inversion = results["null-text"][0]
    assert torch.equal(inversion.prompt_embeds, encode_prompt(pipe, PROMPT).embeds)
    assert inversion.negative_prompt_embeds.shape == (STEPS, 77, 32)
    assert not inversion.negative_slot_free
    assert inversion.stats.optimized_params == 77 * 32 * STEPS
    assert len(inversion.stats.inner_steps) == STEPS and all(1 <= k <= 10 for k in inversion.stats.inner_steps)


def test_stats_and_defaults(pipe, photo, results):
    for method, (inversion, _) in results.items():
        assert inversion.stats.seconds > 0 and inversion.stats.unet_passes >= STEPS, method
        assert inversion.settings.num_inference_steps == STEPS
    assert invert(pipe, photo, PROMPT, "ddim").settings.num_inference_steps == 50


def test_inversion_is_deterministic(pipe, photo, results):
    again = invert(pipe, photo, PROMPT, "ddim", num_inference_steps=STEPS)
    assert torch.equal(again.latents, results["ddim"][0].latents)


@pytest.mark.parametrize("prediction_type", ["v_prediction"])
def test_v_prediction_model_passes_the_same_checks(photo, prediction_type):
    # output_scale 0.3: at 0.1 a random v-model is so close to the ideal denoiser that guidance barely drifts.
    vpipe = tiny_pipeline(seed=0, prediction_type=prediction_type, output_scale=0.3)
    exact = invert(vpipe, photo, PROMPT, "ddim", num_inference_steps=50, guidance_scale=1.0)
    assert _error(vpipe, exact) < 5e-3
    errors = {
        m: _error(vpipe, invert(vpipe, photo, PROMPT, m, num_inference_steps=STEPS))
        for m in ("ddim", "null-text", "prompt-tokens", "direct")
    }
    assert errors["null-text"] < errors["ddim"] / 5  # measured 23×
    assert errors["prompt-tokens"] < errors["ddim"] / 1.5  # measured 2.4×
    assert errors["direct"] < 1e-8


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "prompt-tokens", "prompt": "  "}, "needs a non-empty prompt"),
        ({"method": "negative-prompt", "prompt": ""}, "needs a non-empty prompt"),
        ({"method": "magic"}, "unknown inversion method"),
        ({"config": PromptTokensConfig(tokens="100")}, "exceeds the text encoder's 77 positions"),
        ({"config": InversionConfig()}, "config must be a PromptTokensConfig for inversion method prompt-tokens"),
        ({"method": "ddim", "config": PromptTokensConfig()}, "config must be a InversionConfig for inversion method"),
        ({"method": "null-text", "config": InversionConfig()}, "must be a OptimizingInversionConfig"),
        ({"height": 60}, "multiples of 8"),
    ],
)
def test_bad_arguments_raise(pipe, photo, kwargs, message):
    args = {"method": "prompt-tokens", "prompt": PROMPT, "num_inference_steps": 2} | kwargs
    with pytest.raises(DiffinvError, match=message):
        invert(pipe, photo, **args)


def test_bad_configs_raise():
    with pytest.raises(DiffinvError, match="tokens"):
        PromptTokensConfig(tokens="some")
    with pytest.raises(DiffinvError, match="guidance_scale"):
        InversionConfig(guidance_scale=float("nan"))


def test_each_method_states_its_defaults_and_presets_in_its_config_class():
    for name, method in METHODS.items():
        assert method.name == name  # the registry line and the method agree
        assert resolve_method(name) == (method, method.config_class())
        assert all(type(preset) is method.config_class for preset in method.presets.values()), name
    assert PromptTokensConfig().num_inference_steps == 25 and PromptTokensConfig().optimization.learning_rate == 0.1
    assert OptimizingInversionConfig() == resolve_method("null-text@paper")[1]  # Mokady et al.'s: 50 steps, 1e-2
    assert resolve_method("prompt-tokens@paper")[1].optimization == OptimizingInversionConfig().optimization
