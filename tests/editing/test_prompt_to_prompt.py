"""Prompt-to-prompt on every inversion: the identity invariant, attention-processor hygiene, token alignment,
local blending and every refusal."""

from __future__ import annotations

import pytest
import torch

from conftest import PROMPT
from diffinv import EditConfig, edit, invert, reconstruct
from diffinv.editing import prompt_to_prompt as p2p
from diffinv.editing.alignment import global_alignment, refine_mapping, replace_mapping, word_positions
from diffinv.editing.attention import map_size
from diffinv.errors import DiffinvError
from diffinv.inversion.registry import method_names
from diffinv.testing import tiny_pipeline

STEPS = 6
TARGET = "a man in a space suit"  # "woman" → "man": one token each


@pytest.fixture(scope="module")
def inversions(pipe, photo):
    return {m: invert(pipe, photo, PROMPT, m, num_inference_steps=STEPS) for m in method_names()}


def _identity_config(method: str, mode: str) -> EditConfig:
    reweight = (("woman", 1.0),) if mode == "reweight" else ()
    return EditConfig(mode=mode, reweight=reweight, latent_offsets="both" if method == "direct" else "source")


@pytest.mark.parametrize("mode", ["replace", "refine", "reweight"])
@pytest.mark.parametrize("method", method_names())
def test_identity_edit_reproduces_the_reconstruction(pipe, inversions, method, mode):
    inversion = inversions[method]
    expected = reconstruct(pipe, inversion, output_type="latent")
    result = edit(pipe, inversion, PROMPT, config=_identity_config(method, mode), output_type="latent")
    scale = expected.abs().max()
    assert torch.allclose(result.source, expected, atol=1e-5 * scale, rtol=0)
    assert torch.allclose(result.edit, expected, atol=1e-5 * scale, rtol=0)


@pytest.mark.parametrize("transfer", ["delta", "prefix", "plain"])
def test_identity_edit_with_learned_offsets(pipe, inversions, transfer):
    inversion = inversions["prompt-tokens"]
    expected = reconstruct(pipe, inversion, output_type="latent")
    result = edit(pipe, inversion, PROMPT, embedding_transfer=transfer, output_type="latent")
    assert torch.allclose(result.edit, expected, atol=1e-5 * expected.abs().max(), rtol=0)


def test_prefix_transfer_keeps_offsets_only_before_the_first_change(pipe, inversions):
    inversion = inversions["prompt-tokens"]
    late = "a woman in a space dress"  # the change is the last word: the prefix covers almost every token
    early = "a man in a space suit"  # the change is the second word: the prefix is BOS and "a"
    for target, close in ((late, True), (early, False)):
        delta = edit(pipe, inversion, target, embedding_transfer="delta", output_type="latent").edit
        prefix = edit(pipe, inversion, target, embedding_transfer="prefix", output_type="latent").edit
        plain = edit(pipe, inversion, target, embedding_transfer="plain", output_type="latent").edit
        assert not torch.equal(delta, prefix) and not torch.equal(prefix, plain)
        nearer_delta = (prefix - delta).abs().mean() < (prefix - plain).abs().mean()
        assert nearer_delta == close


@pytest.mark.parametrize("method", ["ddim", "null-text", "prompt-tokens", "negative-prompt", "direct"])
def test_the_source_branch_is_the_reconstruction_in_a_real_edit(pipe, inversions, method):
    inversion = inversions[method]
    expected = reconstruct(pipe, inversion, output_type="latent")
    result = edit(pipe, inversion, TARGET, local_blend=["woman", "man"], output_type="latent")
    assert torch.allclose(result.source, expected, atol=1e-5 * expected.abs().max(), rtol=0)
    assert (result.edit - result.source).abs().max() > 1e-3


def test_direct_inversion_p2p_leaves_the_target_uncorrected(pipe, inversions):
    """Ju et al.'s recipe corrects only the source branch, so even an identity edit drifts like plain DDIM."""
    inversion = inversions["direct"]
    source_only = edit(pipe, inversion, PROMPT, output_type="latent")
    both = edit(pipe, inversion, PROMPT, latent_offsets="both", output_type="latent")
    assert not torch.allclose(source_only.edit, both.edit, atol=1e-3)


def test_plain_embedding_transfer_ignores_the_learned_embedding_once_the_prompt_changes(pipe, inversions):
    inversion = inversions["prompt-tokens"]
    delta = edit(pipe, inversion, TARGET, embedding_transfer="delta", output_type="latent")
    plain = edit(pipe, inversion, TARGET, output_type="latent")  # the default
    assert (delta.edit - plain.edit).abs().max() > 1e-3
    ddim = inversions["ddim"]  # nothing learned: every transfer agrees
    assert torch.equal(
        edit(pipe, ddim, TARGET, output_type="latent").edit,
        edit(pipe, ddim, TARGET, embedding_transfer="delta", output_type="latent").edit,
    )


def test_one_batched_unet_call_per_step_and_processors_restored(pipe, inversions):
    calls = []
    handle = pipe.unet.register_forward_hook(lambda module, args, output: calls.append(args[0].shape[0]))
    before = dict(pipe.unet.attn_processors)
    try:
        edit(pipe, inversions["null-text"], TARGET, output_type="latent")
    finally:
        handle.remove()
    # one batch-1 pass finds the attention map sizes; then unconditional + conditional, source + target per step
    assert calls == [1] + [4] * STEPS
    assert pipe.unet.attn_processors == before


def test_processors_are_restored_after_an_error(pipe, inversions, monkeypatch):
    before = dict(pipe.unet.attn_processors)

    def broken(*args, **kwargs):
        assert all(type(p).__name__ == "ControlledAttnProcessor" for p in pipe.unet.attn_processors.values())
        raise RuntimeError("interrupted")

    monkeypatch.setattr(p2p, "denoise", broken)
    with pytest.raises(RuntimeError, match="interrupted"):
        edit(pipe, inversions["ddim"], TARGET)
    assert pipe.unet.attn_processors == before


def test_local_blend_keeps_the_source_outside_the_mask(pipe, inversions):
    config = EditConfig(local_blend=("woman", "man"), attention_level=1, blend_threshold=0.99)  # flat maps
    result = edit(pipe, inversions["ddim"], TARGET, config=config, output_type="latent")
    assert result.mask is not None and result.mask.shape == (1, 1, *result.edit.shape[-2:])
    assert 0 < result.mask.mean() < 1
    outside = (result.edit - result.source) * (1 - result.mask)
    assert outside.abs().max() == 0


def test_reweight_and_negative_prompt_change_only_the_target(pipe, inversions):
    inversion = inversions["prompt-tokens"]
    plain = edit(pipe, inversion, PROMPT, output_type="latent")
    for kwargs in ({"mode": "reweight", "reweight": {"space": 3.0}}, {"negative_prompt": "blurry"}):
        result = edit(pipe, inversion, PROMPT, output_type="latent", **kwargs)
        assert torch.allclose(result.source, plain.source, atol=1e-6)
        assert (result.edit - plain.edit).abs().max() > 1e-3


def test_non_square_latents(photo):
    pipe = tiny_pipeline(seed=2)
    inversion = invert(pipe, photo, PROMPT, "ddim", num_inference_steps=3, height=32, width=48)
    result = edit(pipe, inversion, TARGET, local_blend=["man"], output_type="pt")
    assert result.edit.shape == (1, 3, 32, 48)
    assert map_size(24, (4, 6)) == (4, 6) and map_size(6, (4, 6)) == (2, 3) and map_size(6, (3, 5)) == (2, 3)


@pytest.mark.parametrize(
    ("target", "kwargs", "match"),
    [
        ("a woman in a very shiny space suit", {}, "use mode 'refine'"),
        (TARGET, {"mode": "reweight", "reweight": {"cat": 2.0}}, "'cat' is not in the target"),
        (TARGET, {"reweight": {"space": float("inf")}}, "finite number"),
        (TARGET, {"mode": "reweight"}, "needs words to reweight"),
        (TARGET, {"local_blend": ["dog"]}, "in neither"),
        (TARGET, {"mode": "swap"}, "unknown edit mode"),
        (TARGET, {"cross_replace_steps": 1.5}, "cross_replace_steps must be a finite number ≥ 0 and ≤ 1"),
        (TARGET, {"embedding_transfer": "copy"}, "embedding_transfer must be"),
        ("  ", {}, "non-empty"),
    ],
)
def test_bad_edits_are_refused(pipe, inversions, target, kwargs, match):
    with pytest.raises(DiffinvError, match=match):
        edit(pipe, inversions["ddim"], target, **kwargs)


@pytest.mark.parametrize("method", ["null-text", "negative-prompt"])
def test_negative_prompt_edit_is_refused_when_the_slot_is_occupied(pipe, inversions, method):
    with pytest.raises(DiffinvError, match="occupies the unconditional"):
        edit(pipe, inversions[method], TARGET, negative_prompt="blurry")


def test_an_inversion_from_another_model_is_refused(inversions):
    with pytest.raises(DiffinvError, match="made with another model"):
        edit(tiny_pipeline(seed=5), inversions["ddim"], TARGET)


def test_token_alignment(pipe):
    tokenizer = pipe.tokenizer
    assert global_alignment([1, 2, 3, 4], [1, 2, 9, 3, 4]) == [0, 1, -1, 2, 3]
    assert global_alignment([1, 2, 3, 4], [1, 3, 4]) == [0, 2, 3]
    mapping = refine_mapping(tokenizer, "a red circle", "a big red circle")
    # BOS a big red circle EOS ...: "big" is new, the rest inherit their source positions
    assert mapping.source_index[:6] == (0, 1, 0, 2, 3, 4)
    assert mapping.inherits[:6] == (1, 1, 0, 1, 1, 1)
    assert mapping.source_index[6] == 5  # padding inherits padding
    official = refine_mapping(tokenizer, "a red circle", "a big red circle", padding="position")
    assert official.source_index[:6] == mapping.source_index[:6] and official.source_index[6:9] == (6, 7, 8)
    swap = replace_mapping(tokenizer, "a red circle", "a blue circle")
    assert swap.source_index[:5] == (0, 1, 2, 3, 4) and swap.same_token[:5] == (True, True, False, True, True)
    assert word_positions(tokenizer, "a red circle and a red square", "red") == [2, 6]
    assert word_positions(tokenizer, "a red circle", "space suit") == []


def test_a_map_branch_of_the_source_prompt_feeds_the_target_after_prompt_token_inversion(pipe, inversions):
    inversion = inversions["prompt-tokens"]
    calls = []
    handle = pipe.unet.register_forward_hook(lambda module, args, output: calls.append(args[0].shape[0]))
    try:
        mapped = edit(pipe, inversion, TARGET, cross_attention_maps="prompt", output_type="latent")
    finally:
        handle.remove()
    assert calls == [1] + [6] * STEPS  # [source, target, maps], unconditional and conditional
    expected = reconstruct(pipe, inversion, output_type="latent")
    assert torch.allclose(mapped.source, expected, atol=1e-5 * expected.abs().max(), rtol=0)
    own = edit(pipe, inversion, TARGET, cross_attention_maps="source", output_type="latent")
    assert (mapped.edit - own.edit).abs().max() > 1e-3
    assert torch.equal(edit(pipe, inversion, TARGET, output_type="latent").edit, mapped.edit)  # the default
    identity = edit(pipe, inversion, PROMPT, cross_attention_maps="prompt", output_type="latent")
    assert torch.allclose(identity.edit, expected, atol=1e-5 * expected.abs().max(), rtol=0)


def test_a_map_branch_equal_to_the_source_changes_nothing(pipe, inversions, monkeypatch):
    """DDIM's source branch already runs on the prompt's own embedding: no branch is added, and one forced in
    (the same conditioning on the same latents) gives the two-branch edit, local blend included."""
    inversion = inversions["ddim"]
    config = EditConfig(local_blend=("woman", "man"), attention_level=1, blend_threshold=0.99)
    two = edit(pipe, inversion, TARGET, config=config.replace(cross_attention_maps="source"), output_type="latent")
    same = edit(pipe, inversion, TARGET, config=config, output_type="latent")
    assert torch.equal(two.edit, same.edit)
    plain = inversion.prompt_embeds
    monkeypatch.setattr(p2p, "_map_branch", lambda *args: plain)
    forced = edit(pipe, inversion, TARGET, config=config, output_type="latent")  # three branches
    scale = two.edit.abs().max()
    assert torch.allclose(forced.edit, two.edit, atol=1e-5 * scale, rtol=0)
    assert torch.equal(forced.mask, two.mask)


def test_a_batch_of_edits_equals_each_edit_alone_in_one_unet_call_per_step(pipe, inversions):
    """Every inversion method in one batch (per-step null embeddings, latent corrections, a map branch beside
    edits without one), each with its own target, mode and blend words."""
    methods = ["ddim", "null-text", "prompt-tokens", "direct", "negative-prompt"]
    targets = [TARGET, "a woman in a red space suit", TARGET, TARGET, PROMPT]
    config = EditConfig(local_blend=("woman",), attention_level=1, blend_threshold=0.99)
    alone = [
        edit(pipe, inversions[m], t, config=config, mode="refine", output_type="latent")
        for m, t in zip(methods, targets, strict=True)
    ]
    calls = []
    handle = pipe.unet.register_forward_hook(lambda module, args, output: calls.append(args[0].shape[0]))
    try:
        batch = edit(pipe, [inversions[m] for m in methods], targets, config=config, mode="refine",
                     output_type="latent")  # fmt: skip
    finally:
        handle.remove()
    assert calls == [1] + [2 * 3 * len(methods)] * STEPS  # guided, three branches (prompt-tokens has a map branch)
    for single, batched in zip(alone, batch, strict=True):
        scale = single.edit.abs().max()
        assert torch.allclose(batched.edit, single.edit, atol=1e-5 * scale, rtol=0)
        assert torch.allclose(batched.source, single.source, atol=1e-5 * scale, rtol=0)
        assert torch.equal(batched.mask, single.mask)


def test_inversions_that_cannot_share_a_batch_are_edited_in_groups(pipe, photo, inversions):
    other = invert(pipe, photo, PROMPT, "ddim", num_inference_steps=STEPS + 1)
    results = edit(pipe, [inversions["ddim"], other], TARGET, output_type="latent")
    for inversion, result in zip([inversions["ddim"], other], results, strict=True):
        assert torch.equal(result.edit, edit(pipe, inversion, TARGET, output_type="latent").edit)


def test_local_blend_reads_the_targets_own_maps_or_those_after_injection(pipe, inversions):
    config = EditConfig(local_blend=("woman", "man"), attention_level=1, blend_threshold=0.5)
    own = edit(pipe, inversions["ddim"], TARGET, config=config, output_type="latent")
    injected = edit(pipe, inversions["ddim"], TARGET, config=config.replace(local_blend_maps="injected"),
                    output_type="latent")  # fmt: skip
    assert not torch.equal(own.mask, injected.mask)  # "man" inherits "woman"'s map once injected
    late = config.replace(cross_replace_steps=0.0)  # nothing injected: the two orders read the same maps
    assert torch.equal(
        edit(pipe, inversions["ddim"], TARGET, config=late, output_type="latent").mask,
        edit(pipe, inversions["ddim"], TARGET, config=late.replace(local_blend_maps="injected"),
             output_type="latent").mask,
    )  # fmt: skip
