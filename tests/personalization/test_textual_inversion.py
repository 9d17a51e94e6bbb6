"""Textual inversion on tiny in-code models: what it changes, what it leaves alone, its files and its bad input."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from diffinv import generate, learn_concept
from diffinv.denoiser import Denoiser, Schedule
from diffinv.errors import DiffinvError
from diffinv.images import encode, prepare_image
from diffinv.personalization import (
    Concept,
    TextualInversionConfig,
    load_concept,
    loaded,
    read_concept,
    unload_concept,
)
from diffinv.testing import tiny_pipeline
from diffinv.text import encode_prompt, expand_prompt, text_embeddings

CAPTION = "a photo of a {}"


def _images(n: int = 3) -> list[Image.Image]:
    colours = ["red", "blue", "green", "orange", "purple"]
    return [Image.new("RGB", (64, 64), colour) for colour in colours[:n]]


def _learn(pipe, steps: int = 12, seed: int = 0, **kwargs):
    config = TextualInversionConfig(steps=steps, learning_rate=0.05, batch_size=2, checkpoint_every=4)
    kwargs.setdefault("generator", torch.Generator().manual_seed(seed))
    return learn_concept(pipe, _images(), "<toy>", "toy", captions=[CAPTION], config=config, progress=False, **kwargs)


def _fixed_loss(pipe, concept: Concept) -> float:
    """The denoising loss of the concept's caption on the training images at fixed timesteps and noise."""
    pixels = torch.cat([prepare_image(image, 64, 64) for image in _images()])
    latents = encode(pipe.vae, pixels).repeat(8, 1, 1, 1)
    with loaded(pipe, [concept]), torch.no_grad():
        prompt = expand_prompt(pipe, CAPTION.replace("{}", concept.token))
        embeds = text_embeddings(pipe, [prompt] * latents.shape[0])
        denoiser = Denoiser(pipe.unet, Schedule.training(pipe.scheduler.config))
        return float(denoiser.denoising_loss(latents, embeds, torch.Generator().manual_seed(1)).mean())


def _state(pipe) -> dict[str, torch.Tensor]:
    return {
        f"{name}.{key}": value.clone()
        for name in ("unet", "text_encoder", "vae")
        for key, value in getattr(pipe, name).state_dict().items()
    }


def test_learning_lowers_the_loss_and_changes_only_the_new_vectors():
    pipe = tiny_pipeline(seed=0)
    before, vocabulary = _state(pipe), dict(pipe.tokenizer.get_vocab())
    concept = _learn(pipe)
    after = _state(pipe)
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
    assert pipe.tokenizer.get_vocab() == vocabulary and pipe.text_encoder.config.vocab_size == len(vocabulary)
    assert all(p.requires_grad for p in pipe.unet.parameters())  # the caller's flags are restored
    (toy,) = pipe.tokenizer("toy", add_special_tokens=False).input_ids
    init_row = pipe.text_encoder.get_input_embeddings().weight[toy]
    start = Concept("<toy>", init_row.detach().unsqueeze(0).clone())
    assert not torch.equal(concept.embeds, start.embeds)
    assert _fixed_loss(pipe, concept) < _fixed_loss(pipe, start) - 1e-4
    assert concept.info.steps == 12 and concept.info.shots == 3 and concept.info.method == "ti"


def test_same_generator_same_concept_and_resume_equals_an_uninterrupted_run(tmp_path):
    pipe = tiny_pipeline(seed=0)
    straight = _learn(pipe, steps=8)
    assert torch.equal(_learn(pipe, steps=8).embeds, straight.embeds)
    _learn(pipe, steps=4, checkpoint_dir=tmp_path)
    resumed = _learn(pipe, steps=8, seed=99, checkpoint_dir=tmp_path, resume=True)  # the saved seed wins
    assert torch.equal(resumed.embeds, straight.embeds)
    with pytest.raises(DiffinvError, match="already holds a checkpoint"):
        _learn(pipe, steps=8, checkpoint_dir=tmp_path)
    with pytest.raises(DiffinvError, match="another concept"):
        learn_concept(pipe, _images(2), "<toy>", "toy", captions=[CAPTION], steps=9, checkpoint_dir=tmp_path,
                      resume=True, progress=False)  # fmt: skip
    with pytest.raises(DiffinvError, match=r"differs in the parameter shapes \(number of vectors"):
        _learn(pipe, steps=8, checkpoint_dir=tmp_path, resume=True, num_vectors=2)
    (tmp_path / "file").write_text("kept")
    with pytest.raises(DiffinvError, match="is not a folder"):
        _learn(pipe, steps=8, checkpoint_dir=tmp_path / "file" / "ckpt")
    assert (tmp_path / "file").read_text() == "kept"


def test_more_vectors_than_the_prompts_hold_are_refused():
    pipe = tiny_pipeline(seed=0)
    pipe.tokenizer.model_max_length = 12  # as a model with 12 text positions: 10 between BOS and EOS
    words = len(pipe.tokenizer(CAPTION.replace("{}", ""), add_special_tokens=False).input_ids)
    with pytest.raises(DiffinvError, match=f"use at most {10 - words} vectors"):
        _learn(pipe, steps=1, num_vectors=11 - words)
    assert _learn(pipe, steps=1, num_vectors=10 - words).num_vectors == 10 - words


def test_a_diverging_optimisation_is_refused_naming_the_learning_rate():
    pipe = tiny_pipeline(seed=0)
    with pytest.raises(DiffinvError, match="learning diverged .* at learning_rate 1e\\+30"):
        learn_concept(pipe, _images(1), "<toy>", "toy", learning_rate=1e30, steps=3, progress=False)


def test_files_round_trip_and_load_with_diffusers(tmp_path):
    pipe = tiny_pipeline(seed=0)
    concept = _learn(pipe, steps=2, num_vectors=2)
    assert concept.tokens == ["<toy>", "<toy>_1"]
    concept.save(tmp_path / "toy.safetensors")
    concept.export_a1111(tmp_path / "toy_a1111.safetensors")
    back = read_concept(tmp_path / "toy.safetensors")
    assert back.token == "<toy>" and torch.equal(back.embeds, concept.embeds) and back.info == concept.info
    a1111 = read_concept(tmp_path / "toy_a1111.safetensors")
    assert a1111.token == "<toy>" and torch.equal(a1111.embeds, concept.embeds) and a1111.info is None

    diffusers_pipe = tiny_pipeline(seed=0)
    diffusers_pipe.load_textual_inversion(str(tmp_path / "toy.safetensors"))  # diffusers' own loader, unchanged
    diffusers_pipe.load_textual_inversion(str(tmp_path / "toy_a1111.safetensors"), token="<web>")
    table = diffusers_pipe.text_encoder.get_input_embeddings().weight
    for token in ("<toy>", "<web>"):
        ids = diffusers_pipe.tokenizer.convert_tokens_to_ids([token, f"{token}_1"])
        assert torch.equal(table[ids], concept.embeds)
    ours = tiny_pipeline(seed=0)
    load_concept(ours, tmp_path / "toy.safetensors")
    prompt = "a <toy> on a table"
    assert torch.equal(encode_prompt(ours, prompt).embeds, encode_prompt(diffusers_pipe, prompt).embeds)


STORED_INFO = {  # a concept file's description as the first release wrote it (ConceptInfo's bespoke to_dict)
    "method": "ti",
    "init_word": "toy",
    "property": "object",
    "model_fingerprint": {"config_hash": "sha256:0123456789abcdef", "weight_signature": [0.5, -1.25]},
    "config": {"steps": 2, "learning_rate": 0.05, "batch_size": 2, "weight_decay": 0.01, "flip_probability": 0.5,
               "warmup_steps": 0, "checkpoint_every": 4, "caption_dropout": 0.0, "num_vectors": 1},
    "shots": 3,
    "steps": 2,
    "seconds": 1.5,
    "loss": 0.25,
}  # fmt: skip


def test_stored_concept_descriptions_still_read_and_bad_ones_are_refused(tmp_path):
    def write(info) -> Path:
        path = tmp_path / "stored.safetensors"
        header = {"format": "diffinv.concept", "version": 1, "token": "<toy>", "info": info}
        save_file({"<toy>": torch.zeros(1, 32)}, str(path), metadata={"diffinv": json.dumps(header)})
        return path

    info = read_concept(write(STORED_INFO)).info
    assert info.to_dict() == STORED_INFO and info.model_fingerprint.weight_signature == (0.5, -1.25)
    assert TextualInversionConfig.from_dict(info.config) == TextualInversionConfig(
        steps=2, learning_rate=0.05, batch_size=2, checkpoint_every=4
    )
    for bad, message in [
        ({k: v for k, v in STORED_INFO.items() if k != "shots"}, "lacks the setting"),
        ({**STORED_INFO, "extra": 1}, "unknown setting"),
        ({**STORED_INFO, "shots": "3"}, "shots must be a int"),
        ({**STORED_INFO, "model_fingerprint": {"weight_signature": []}}, "description is unreadable"),
    ]:
        with pytest.raises(DiffinvError, match=message) as error:
            read_concept(write(bad))
        assert "stored.safetensors" in str(error.value) and "\n" not in str(error.value)


def test_weights_only_torch_files_load_and_pickles_are_refused(tmp_path):
    pipe = tiny_pipeline(seed=0)
    vectors = torch.randn(2, 32, generator=torch.Generator().manual_seed(0))
    torch.save({"string_to_param": {"*": vectors}, "name": "web", "step": 10}, tmp_path / "web.pt")
    torch.save({"<bin>": vectors[0]}, tmp_path / "learned_embeds.bin")
    web = read_concept(tmp_path / "web.pt")
    assert torch.equal(web.embeds, vectors) and web.token == "web"
    loaded_bin = load_concept(pipe, tmp_path / "learned_embeds.bin")
    assert loaded_bin.token == "<bin>" and loaded_bin.embeds.shape == (1, 32)
    torch.save({"<evil>": vectors, "payload": copy.deepcopy}, tmp_path / "evil.pt")  # a pickled function
    with pytest.raises(DiffinvError, match=r"a Python object \(copy.deepcopy\) beyond tensors; .* weights-only"):
        read_concept(tmp_path / "evil.pt")
    (tmp_path / "garbage.pt").write_bytes(b"not a torch file at all")
    with pytest.raises(DiffinvError, match="not a readable torch file"):
        read_concept(tmp_path / "garbage.pt")


def test_two_concepts_in_one_prompt_and_unload_restores_the_encoder(tmp_path):
    pipe = tiny_pipeline(seed=0)
    table = pipe.text_encoder.get_input_embeddings().weight.clone()
    a = Concept("<a>", torch.randn(1, 32, generator=torch.Generator().manual_seed(1)))
    b = Concept("<b>", torch.randn(3, 32, generator=torch.Generator().manual_seed(2)))
    load_concept(pipe, a)
    load_concept(pipe, b)
    encoded = encode_prompt(pipe, "a <a> beside a <b>")
    assert encoded.n_tokens == 1 + 2 + 1 + 1 + 3 + 1  # BOS a <a> beside a <b>x3 EOS
    assert generate(pipe, "a <a> beside a <b>", num_inference_steps=2, output_type="pt").shape == (1, 3, 64, 64)
    unload_concept(pipe, a)
    unload_concept(pipe, "<b>")
    assert torch.equal(pipe.text_encoder.get_input_embeddings().weight, table)
    with pytest.raises(DiffinvError, match="no concept is loaded"):
        unload_concept(pipe, "<b>")


def test_bad_input_is_refused_in_one_line(tmp_path):
    pipe = tiny_pipeline(seed=0)
    images = _images(2)
    for kwargs, message in [
        ({"images": [], "token": "<t>"}, "no images"),
        ({"images": images, "token": "cat</w>"}, "already in the vocabulary"),
        ({"images": images, "token": "two words"}, "without spaces"),
        ({"images": images, "token": "<t>", "init_word": "red car"}, "is 2 tokens"),
        ({"images": images, "token": "<t>", "captions": ["no placeholder"]}, "exactly once"),
        ({"images": images, "token": "<t>", "captions": ["{}", "{}", "{}"]}, "3 captions for 2 images"),
        ({"images": [tmp_path / "missing.png"], "token": "<t>"}, "no such file"),
        ({"images": images, "token": "<t>", "method": "dreambooth"}, "unknown personalization method"),
        ({"images": images, "token": "<t>", "resume": True}, "checkpoint folder"),
        ({"images": images, "token": "<t>", "property": "texture"}, "property must be"),
    ]:
        kwargs = {"init_word": "toy", "steps": 1, "progress": False, **kwargs}
        with pytest.raises(DiffinvError, match=message):
            learn_concept(pipe, **kwargs)
    with pytest.raises(DiffinvError, match="num_vectors"):
        TextualInversionConfig(num_vectors=0)

    wide = tmp_path / "wide.safetensors"
    save_file({"<wide>": torch.zeros(1, 768)}, str(wide))
    with pytest.raises(DiffinvError, match="768 wide, but this text encoder's tokens are 32 wide"):
        load_concept(pipe, wide)
    other_model = tiny_pipeline(seed=1)
    concept = _learn(other_model, steps=1)
    with pytest.raises(DiffinvError, match="was learned on model"):
        load_concept(pipe, concept)
    twice = Concept("<t>", torch.zeros(1, 32))
    load_concept(pipe, twice)
    with pytest.raises(DiffinvError, match="already in the vocabulary"):
        load_concept(pipe, twice)
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DiffinvError, match=r"\.safetensors, or \.pt/\.bin"):
        read_concept(tmp_path / "notes.txt")
    save_file({"a": torch.zeros(1, 32), "b": torch.zeros(1, 32)}, str(tmp_path / "two.safetensors"))
    with pytest.raises(DiffinvError, match="not a textual-inversion embedding"):
        read_concept(tmp_path / "two.safetensors")
    save_file({"<nan>": torch.full((1, 32), float("nan"))}, str(tmp_path / "nan.safetensors"))
    with pytest.raises(DiffinvError, match="NaN"):
        read_concept(tmp_path / "nan.safetensors")


def test_a_learned_token_works_in_invert_edit_and_sdedit():
    from diffinv import edit, invert, sdedit

    pipe = tiny_pipeline(seed=0)
    load_concept(pipe, _learn(pipe, steps=2, num_vectors=2))
    photo = Image.new("RGB", (64, 64), "red")
    inversion = invert(pipe, photo, "a photo of a <toy>", "prompt-tokens", num_inference_steps=2)
    assert inversion.settings.optimized_positions == 1 + 4 + 2 + 1  # BOS, a photo of a, <toy> x 2, EOS
    result = edit(pipe, inversion, "a drawing of a <toy>", output_type="pt")
    assert result.edit.shape == (1, 3, 64, 64)
    guided = sdedit(pipe, photo, "a <toy>", strength=0.5, num_inference_steps=4, output_type="pt",
                    generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert guided.shape == (1, 3, 64, 64)


def test_with_every_caption_dropped_the_vectors_never_move():
    pipe = tiny_pipeline(seed=0)
    config = TextualInversionConfig(steps=3, learning_rate=0.05, weight_decay=0.0, caption_dropout=1.0)
    concept = learn_concept(pipe, _images(2), "<toy>", "toy", captions=[CAPTION], config=config, progress=False)
    (toy,) = pipe.tokenizer("toy", add_special_tokens=False).input_ids
    assert torch.equal(concept.embeds[0], pipe.text_encoder.get_input_embeddings().weight[toy].detach())


def test_without_captions_the_papers_templates_of_the_property_are_used():
    import numpy as np

    from diffinv.personalization.problem import ConceptProblem

    pipe = tiny_pipeline(seed=0)
    for prop, marker in (("object", "photo"), ("style", "in the style of")):
        problem = ConceptProblem(pipe, torch.zeros(2, 3, 64, 64), "<s>", "toy", prop, None, seed=0)
        prompts = problem.prompts(np.array([0, 1, 0, 1]), np.random.default_rng(0))
        assert all("<s>" in p for p in prompts) and any(marker in p for p in prompts)
    concept = learn_concept(pipe, _images(2), "<s>", "toy", property="style", steps=1, progress=False)
    assert concept.info.property == "style"
