"""The LoRA baseline on tiny in-code models: apply-then-remove restores the UNet exactly, files load with diffusers."""

from __future__ import annotations

import subprocess
import sys

import torch
from PIL import Image

from diffinv import generate, learn_concept
from diffinv.personalization import LoRAConfig, load_concept, read_concept, unload_concept
from diffinv.personalization.registry import METHOD_CONFIGS, PERSONALIZERS
from diffinv.testing import tiny_pipeline


def _learn(pipe, steps: int = 3, token: str = "<x>"):
    images = [Image.new("RGB", (64, 64), colour) for colour in ("red", "blue")]
    config = LoRAConfig(steps=steps, learning_rate=1e-2)
    return learn_concept(pipe, images, token, "toy", method="lora", config=config, captions=["a photo of a {}"],
                         generator=torch.Generator().manual_seed(0), progress=False)  # fmt: skip


def _seed() -> torch.Generator:
    return torch.Generator().manual_seed(0)


def _unet_state(pipe) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in pipe.unet.state_dict().items()}


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_every_method_has_its_config_class_and_listing_them_loads_no_torch():
    assert METHOD_CONFIGS.names() == PERSONALIZERS.names() == ("ti", "lora", "e4t")
    assert all(PERSONALIZERS[name].name == name for name in PERSONALIZERS)
    code = (
        "import sys; from diffinv.personalization.registry import METHOD_CONFIGS, PERSONALIZERS; "
        "[cls() for cls in METHOD_CONFIGS.values()]; print(PERSONALIZERS.names(), 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "('ti', 'lora', 'e4t') False"


def test_learning_leaves_the_unet_as_it_was_and_the_offsets_move(tmp_path):
    pipe = tiny_pipeline(seed=0)
    before = _unet_state(pipe)
    concept = _learn(pipe)
    assert _same(_unet_state(pipe), before) and not getattr(pipe.unet, "peft_config", None)
    assert all(p.requires_grad for p in pipe.unet.parameters())
    ups = [v for k, v in concept.unet_lora.items() if k.endswith("lora_B.weight")]
    assert ups and all(v.shape[1] == 4 for v in ups) and any(v.abs().sum() > 0 for v in ups)  # B starts at 0
    (toy,) = pipe.tokenizer("toy", add_special_tokens=False).input_ids
    assert torch.equal(concept.embeds[0], pipe.text_encoder.get_input_embeddings().weight[toy])  # frozen init word


def test_apply_then_remove_restores_exactly_and_files_load_with_diffusers(tmp_path):
    pipe = tiny_pipeline(seed=0)
    concept = _learn(pipe)
    before = _unet_state(pipe)
    plain = generate(pipe, "a photo of a toy", num_inference_steps=3, output_type="pt", generator=_seed())
    concept.save(tmp_path / "x.safetensors")
    concept.export_lora(tmp_path / "x_lora.safetensors")
    concept.export_a1111(tmp_path / "x_embedding.safetensors")
    back = read_concept(tmp_path / "x.safetensors")
    assert back.unet_lora.keys() == concept.unet_lora.keys()
    assert all(torch.equal(back.unet_lora[k], concept.unet_lora[k]) for k in concept.unet_lora)

    load_concept(pipe, back)
    other = _learn(tiny_pipeline(seed=0), token="<y>")
    load_concept(pipe, other)
    assert sorted(pipe.get_active_adapters()) == ["concept:<x>", "concept:<y>"]  # both concepts act
    unload_concept(pipe, other)
    with_concept = generate(pipe, "a photo of a <x>", num_inference_steps=3, output_type="pt", generator=_seed())
    unload_concept(pipe, back)
    assert _same(_unet_state(pipe), before) and not getattr(pipe.unet, "peft_config", None)
    after = generate(pipe, "a photo of a toy", num_inference_steps=3, output_type="pt", generator=_seed())
    assert torch.equal(after, plain)

    diffusers_pipe = tiny_pipeline(seed=0)
    diffusers_pipe.load_lora_weights(str(tmp_path / "x_lora.safetensors"))  # diffusers' own loader
    diffusers_pipe.load_textual_inversion(str(tmp_path / "x_embedding.safetensors"), token="<x>")
    assert diffusers_pipe.get_list_adapters() == {"unet": ["default_0"]}
    theirs = diffusers_pipe.unet.state_dict()
    ours_pipe = tiny_pipeline(seed=0)
    load_concept(ours_pipe, concept)
    ours = ours_pipe.unet.state_dict()
    for key, value in ours.items():
        assert torch.equal(value, theirs[key.replace("concept:<x>", "default_0")])
    again = generate(ours_pipe, "a photo of a <x>", num_inference_steps=3, output_type="pt", generator=_seed())
    torch.testing.assert_close(again, with_concept)
