import pytest
import torch

from diffinv import pipelines
from diffinv.errors import DiffinvError
from diffinv.pipelines import fingerprint, load_pipeline, resolve_device, resolve_dtype
from diffinv.testing import tiny_pipeline


@pytest.fixture(scope="module")
def saved_pipe(tmp_path_factory, pipe):
    folder = tmp_path_factory.mktemp("models") / "tiny"
    pipe.save_pretrained(folder, safe_serialization=True)
    return folder


def test_diffusers_folder_round_trip_keeps_fingerprint(saved_pipe, pipe):
    loaded = load_pipeline(saved_pipe)
    assert fingerprint(loaded) == fingerprint(pipe)
    assert not list(saved_pipe.rglob("*.bin")), "weights must be saved as safetensors"


def test_fingerprint_is_dtype_independent_but_weight_sensitive(saved_pipe, pipe):
    bf16 = load_pipeline(saved_pipe, dtype="bf16")
    assert bf16.unet.dtype == torch.bfloat16
    assert fingerprint(bf16).matches(fingerprint(pipe))
    assert not fingerprint(tiny_pipeline(seed=1)).matches(fingerprint(pipe))


def test_fingerprint_changes_when_one_layer_is_retrained(pipe):
    changed = tiny_pipeline(seed=0)
    with torch.no_grad():
        changed.unet.conv_in.weight.add_(torch.randn_like(changed.unet.conv_in.weight))
    assert not fingerprint(changed).matches(fingerprint(pipe))


def _file(path, data: bytes):
    path.write_bytes(data)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing", "not a built-in name, an existing path, or a hub id"),
        (lambda p: p, "not a diffusers pipeline"),
        (lambda p: _file(p / "model.ckpt", b"pickle"), "pickled checkpoints"),
        (lambda p: _file(p / "model.safetensors", b"garbage"), "single-file"),
        (lambda p: "nobody/no-such-model", "Hugging Face Hub"),
    ],
)
def test_bad_model_references_give_one_line_errors(tmp_path, make, message):
    with pytest.raises(DiffinvError, match=message) as info:
        load_pipeline(make(tmp_path))
    assert "\n" not in str(info.value)


def test_missing_builtin_model_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(pipelines, "builtin_model_path", lambda name: tmp_path / name)
    with pytest.raises(DiffinvError, match="built-in model 'mini' is missing"):
        load_pipeline(None)


def test_device_and_dtype_validation():
    assert resolve_dtype(None) == torch.float32
    with pytest.raises(DiffinvError, match="dtype"):
        resolve_dtype("fp8")
    with pytest.raises(DiffinvError, match="device"):
        resolve_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(DiffinvError, match="no CUDA device"):
            resolve_device("cuda")


def test_folders_of_other_pipeline_classes_are_refused_naming_the_class(tmp_path, saved_pipe):
    import json
    import shutil

    folder = tmp_path / "xl"
    shutil.copytree(saved_pipe, folder)
    index = json.loads((folder / "model_index.json").read_text())
    (folder / "model_index.json").write_text(json.dumps({**index, "_class_name": "StableDiffusion3Pipeline"}))
    with pytest.raises(DiffinvError, match="holds a StableDiffusion3Pipeline model.*1.x/2.x and SDXL"):
        load_pipeline(folder)
    (folder / "model_index.json").write_text("{not json")
    with pytest.raises(DiffinvError, match="not readable JSON"):
        load_pipeline(folder)


def test_an_sdxl_style_unet_in_an_sd_pipeline_or_an_inpainting_unet_is_refused_after_loading(tmp_path, pipe):
    from diffusers import UNet2DConditionModel

    config = dict(pipe.unet.config)
    cases = [
        (
            {
                "addition_embed_type": "text_time",
                "addition_time_embed_dim": 8,
                "projection_class_embeddings_input_dim": 80,
            },
            "SDXL-style UNet",
        ),  # fmt: skip
        ({"in_channels": 9}, "taking 9 channels for 4-channel latents"),
    ]
    for change, message in cases:
        folder = tmp_path / message.split()[0]
        pipe.save_pretrained(folder, safe_serialization=True)
        UNet2DConditionModel(**{k: v for k, v in config.items() if not k.startswith("_")} | change).save_pretrained(
            folder / "unet", safe_serialization=True
        )
        with pytest.raises(DiffinvError, match=message):
            load_pipeline(folder)


def test_fingerprint_can_ignore_added_tokens():
    model = tiny_pipeline(seed=0)
    full, vocabulary_free = fingerprint(model), fingerprint(model, base_model=True)
    model.load_textual_inversion({"<new>": torch.ones(1, 32)}, token="<new>")
    assert not fingerprint(model).matches(full)
    assert fingerprint(model, base_model=True).matches(vocabulary_free)
    assert not fingerprint(tiny_pipeline(seed=1), base_model=True).matches(vocabulary_free)
