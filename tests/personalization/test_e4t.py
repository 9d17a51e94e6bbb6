"""E4T on tiny in-code models: the per-prompt offsets are the LoRA they stand for, encoder files round-trip, tuning
restores the model, pre-training runs and resumes."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from diffinv import learn_concept
from diffinv.errors import DiffinvError
from diffinv.personalization import E4TConfig, load_concept, unload_concept
from diffinv.personalization.adapters import lora_adapter
from diffinv.personalization.e4t_encoder import E4TEncoder, EncoderConfig, offset_layers, per_prompt_offsets
from diffinv.pipelines import fingerprint
from diffinv.testing import tiny_pipeline
from diffinv.train import e4t as train_e4t


def _encoder(pipe) -> E4TEncoder:
    torch.manual_seed(0)
    encoder = E4TEncoder(EncoderConfig(channels=(8, 16), rank=2, class_word="toy"), offset_layers(pipe.unet), 32)
    with torch.no_grad():  # non-zero heads, so predictions differ per image
        for head in (encoder.word, encoder.coefficients):
            head.weight.normal_(0, 0.5)
    return encoder.eval()


def _same(a: E4TEncoder, b: E4TEncoder) -> bool:
    first, second = a.state_dict(), b.state_dict()
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


def test_per_prompt_offsets_equal_the_peft_lora_they_stand_for():
    pipe = tiny_pipeline(seed=0)
    encoder = _encoder(pipe)
    latents = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    embeds = torch.randn(2, 77, 32, generator=torch.Generator().manual_seed(1))
    coefficients = torch.randn(2, len(encoder.layers), 2, generator=torch.Generator().manual_seed(2))
    with torch.no_grad(), per_prompt_offsets(pipe.unet, encoder, coefficients):
        hooked = pipe.unet(latents, 500, encoder_hidden_states=embeds).sample
    targets = [name for name, _, _ in encoder.layers]
    for b in range(2):
        with torch.no_grad(), lora_adapter(pipe.unet, 2, targets) as params:
            lora = encoder.lora(coefficients[b])
            for name, p in params.items():
                p.copy_(lora[name])
            alone = pipe.unet(latents[b : b + 1], 500, encoder_hidden_states=embeds[b : b + 1]).sample
        torch.testing.assert_close(hooked[b : b + 1], alone, rtol=1e-4, atol=1e-5)
    assert len(encoder.layers) == 2 * sum(1 for m in pipe.unet.modules() if getattr(m, "is_cross_attention", 0))


def test_encoder_files_round_trip_and_belong_to_one_model(tmp_path):
    pipe = tiny_pipeline(seed=0)
    encoder = _encoder(pipe)
    encoder.save(tmp_path / "enc", fingerprint(pipe, base_model=True), {"steps": 0})
    back, model = E4TEncoder.load(tmp_path / "enc")
    assert model.matches(fingerprint(pipe, base_model=True))
    assert _same(encoder, back)
    (tmp_path / "enc" / "config.json").write_text("{}")
    with pytest.raises(DiffinvError, match="not an E4T encoder folder"):
        E4TEncoder.load(tmp_path / "enc")
    with pytest.raises(DiffinvError, match="no readable E4T encoder"):
        E4TEncoder.load(tmp_path / "nothing")


def test_tuning_from_one_shot_restores_the_model_and_the_concept_loads(tmp_path):
    pipe = tiny_pipeline(seed=0)
    _encoder(pipe).save(tmp_path / "enc", fingerprint(pipe, base_model=True), {})
    before = {k: v.clone() for k, v in pipe.unet.state_dict().items()}
    config = E4TConfig(steps=3, encoder=str(tmp_path / "enc"), batch_size=2)
    shot = [Image.new("RGB", (64, 64), "red")]
    concept = learn_concept(pipe, shot, "<e>", method="e4t", config=config, captions=["a photo of a {}"],
                            generator=torch.Generator().manual_seed(0), progress=False)  # fmt: skip
    after = pipe.unet.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)
    assert concept.info.method == "e4t" and concept.info.init_word == "toy" and concept.info.steps == 3
    assert {k.rsplit(".lora_", 1)[0] for k in concept.unet_lora} == {n for n, _, _ in _encoder(pipe).layers}
    load_concept(pipe, concept)
    unload_concept(pipe, concept)
    assert all(torch.equal(pipe.unet.state_dict()[k], before[k]) for k in before)
    other = tiny_pipeline(seed=1)
    with pytest.raises(DiffinvError, match="pre-trained for model"):
        learn_concept(other, shot, "<e>", method="e4t", config=config, progress=False)


def test_pretraining_runs_resumes_and_writes_a_loadable_encoder(tmp_path, monkeypatch):
    pipe = tiny_pipeline(seed=0)
    pipe.save_pretrained(tmp_path / "model")
    config = train_e4t.E4TTrainConfig(
        encoder=EncoderConfig(channels=(8, 16), rank=2, class_word="toy"), steps=2, batch_size=2, checkpoint_every=1
    )
    train_e4t.train_e4t(config, tmp_path / "work", model=str(tmp_path / "model"), progress=False)
    longer = train_e4t.E4TTrainConfig(**{**config.__dict__, "steps": 3})
    encoder = train_e4t.train_e4t(longer, tmp_path / "work", model=str(tmp_path / "model"), resume=True,
                                  progress=False)  # fmt: skip
    loaded, model = E4TEncoder.load(tmp_path / "work" / "final")
    assert model.matches(fingerprint(pipe, base_model=True))
    assert _same(encoder, loaded)
    with pytest.raises(DiffinvError, match="already holds a checkpoint"):
        train_e4t.train_e4t(config, tmp_path / "work", model=str(tmp_path / "model"), progress=False)


@pytest.mark.stored_data
def test_the_shipped_encoder_belongs_to_the_built_in_model():
    from diffinv.personalization.e4t import shipped_encoder
    from diffinv.pipelines import load_pipeline

    pipe = load_pipeline()
    encoder, model = E4TEncoder.load(shipped_encoder())
    assert model.matches(fingerprint(pipe, base_model=True))
    assert [name for name, _, _ in encoder.layers] == [name for name, _, _ in offset_layers(pipe.unet)]


def test_pretraining_batches_follow_the_world() -> None:
    import numpy as np

    from diffinv.shapes.world import V3

    _, v2_targets, v2_captions = train_e4t._render_batch(np.random.default_rng(0), 6, 64, 0.0)
    _, v3_targets, v3_captions = train_e4t._render_batch(np.random.default_rng(0), 6, 64, 0.0, "v3")
    assert v2_captions == v3_captions  # one grammar: only the layout differs
    area = {name: (t != t[:, :, :1, :1]).any(1).float().mean() for name, t in (("v2", v2_targets), ("v3", v3_targets))}
    assert area["v3"] > area["v2"] * (V3.size_fraction["large"] / 0.3) ** 2 * 0.8  # v3's larger objects
    with pytest.raises(ValueError, match="unknown Shapes world"):
        train_e4t.E4TTrainConfig(world="v9")
