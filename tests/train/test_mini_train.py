"""The mini model's staged training entry point: a tiny config runs every stage, resumes, and assembles a pipeline
that diffusers loads and :func:`diffinv.api.generate` samples from."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from diffusers import StableDiffusionPipeline
from safetensors.torch import load_file

from diffinv.api import generate
from diffinv.loop.common import EMA, batch_rng, learning_rate
from diffinv.shapes import Scene
from diffinv.shapes.captions import caption
from diffinv.shapes.vocab import COLORS, POSITIONS, SHAPES, TRAIN_SHAPES
from diffinv.shapes.world import V2
from diffinv.train import data
from diffinv.train.config import MiniConfig
from diffinv.train.data import sample_train_scenes
from diffinv.train.mini import main
from diffinv.train.parts import scheduler
from diffinv.train.probe import TrainConfig
from diffinv.train.probe import train as train_probe
from diffinv.train.text import CaptionHeads, caption_loss
from diffinv.train.unet import min_snr_weights, sample_timesteps

TINY = {
    "num_inference_steps": 4,
    "vae": {
        "model": {"block_out_channels": [8, 8, 8, 8], "norm_num_groups": 4, "image_size": 32},
        "steps": 3,
        "batch_size": 2,
        "warmup_steps": 1,
        "checkpoint_every": 2,
        "scale_images": 8,
        "eval_images": 4,
    },
    "text": {"steps": 3, "batch_size": 4, "warmup_steps": 1, "checkpoint_every": 2, "eval_captions": 4},
    "unet": {
        "text": {"hidden_size": 16, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 16},
        "model": {
            "block_out_channels": [16, 16],
            "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
            "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
            "attention_head_dim": 8,
            "norm_num_groups": 4,
        },
        "steps": 3,
        "batch_size": 2,
        "warmup_steps": 1,
        "checkpoint_every": 2,
        "pool_size": 6,
        "eval_every_minutes": 0,
    },
}


def _latest(folder: Path) -> tuple[int, dict[str, torch.Tensor]]:
    latest = json.loads((folder / "checkpoints" / "latest.json").read_text())
    return latest["step"], load_file(folder / "checkpoints" / latest["dir"] / "model.safetensors")


@pytest.fixture()
def work(tmp_path: Path) -> tuple[Path, list[str]]:
    config = tmp_path / "tiny.json"
    config.write_text(json.dumps(TINY))
    run = tmp_path / "run"
    return run, ["--work", str(run), "--config", str(config), "--no-progress"]


def test_stages_resume_and_assemble_a_loadable_pipeline(work: tuple[Path, list[str]], tmp_path: Path) -> None:
    run, args = work
    assert main(["vae", *args]) == 0
    step, vae3 = _latest(run / "vae")
    assert step == 3
    assert main(["vae", *args]) == 2  # refuses to overwrite a run without --resume
    assert main(["vae", *args, "--vae-steps", "4", "--resume"]) == 0
    step, vae4 = _latest(run / "vae")
    assert step == 4 and any(not torch.equal(vae3[k], vae4[k]) for k in vae3)
    record = json.loads((run / "vae" / "eval.json").read_text())
    assert record["complete"] and record["scaling_factor"] > 0 and "psnr_photos" in record["eval"]

    assert main(["unet", *args]) == 2  # needs the text stage first
    assert main(["text", *args]) == 0
    assert _latest(run / "text")[0] == 3
    assert main(["text", *args, "--resume"]) == 0  # already complete: exports again, no new steps
    assert set(json.loads((run / "text" / "eval.json").read_text())["accuracy"]) >= {"shape", "position"}
    assert main(["unet", *args]) == 0
    assert _latest(run / "unet")[0] == 3
    pretrained = load_file(run / "text" / "final" / "text_encoder" / "model.safetensors")
    _, unet_state = _latest(run / "unet")
    for key, value in pretrained.items():  # frozen by default (text_lr_scale 0)
        torch.testing.assert_close(unet_state[f"text_encoder.{key}"], value)
    assert (run / "unet" / "pool.safetensors").is_file()
    assert main(["unet", *args, "--unet-steps", "5", "--resume"]) == 0
    assert _latest(run / "unet")[0] == 5

    out = tmp_path / "mini"
    assert main(["assemble", *args, "--out", str(out)]) == 0
    pipe = StableDiffusionPipeline.from_pretrained(out, local_files_only=True, safety_checker=None)
    weights = load_file(out / "unet" / "diffusion_pytorch_model.safetensors")
    assert all(v.dtype == torch.float16 for v in weights.values())
    assert pipe.tokenizer.model_max_length == 32 and pipe.tokenizer.pad_token == pipe.tokenizer.eos_token
    assert pipe.text_encoder.config.max_position_embeddings == 32
    assert pipe.vae_scale_factor == 8
    assert pipe.vae.config.scaling_factor == pytest.approx(
        json.loads((run / "vae" / "eval.json").read_text())["scaling_factor"]
    )
    image = generate(
        pipe, "a big red circle in the center, on a white background", num_inference_steps=3,
        generator=torch.Generator().manual_seed(0), output_type="np",
    )  # fmt: skip
    assert image.shape == (1, 32, 32, 3) and np.isfinite(image).all()
    assert json.loads((out / "training.json").read_text())["config"]["unet"]["pool_size"] == 6

    assert main(["eval", *args, "--out", str(out), "--eval-prompts", "2"]) == 0
    scores = json.loads((run / "eval.json").read_text())
    assert scores["weights_mb"] > 0 and scores["seconds_per_image"] > 0 and "psnr_shapes" in scores["vae"]
    assert set(scores["single"]) <= {"background", "shape", "color", "size", "position", "all"}


def test_resumed_unet_stage_matches_an_uninterrupted_one(work: tuple[Path, list[str]], tmp_path: Path) -> None:
    run, args = work
    assert main(["vae", *args]) == 0
    assert main(["text", *args]) == 0
    assert main(["unet", *args, "--unet-steps", "2"]) == 0
    assert main(["unet", *args, "--unet-steps", "4", "--resume"]) == 0
    _, resumed = _latest(run / "unet")

    config = tmp_path / "tiny.json"
    other = tmp_path / "other"
    other.mkdir()
    for stage in ("vae", "text"):
        (other / stage).symlink_to(run / stage, target_is_directory=True)
    args2 = ["--work", str(other), "--config", str(config), "--no-progress"]
    assert main(["unet", *args2, "--unet-steps", "4"]) == 0
    _, straight = _latest(other / "unet")
    assert resumed.keys() == straight.keys()
    for key in resumed:  # bit for bit: both runs computed here, every batch a function of (seed, step)
        assert torch.equal(resumed[key], straight[key]), key


def test_config_round_trips_and_rejects_unknown_fields() -> None:
    config = MiniConfig.from_dict(TINY)
    assert MiniConfig.from_dict(config.to_dict()) == config
    assert config.unet.model.block_out_channels == (16, 16)
    with pytest.raises(ValueError, match="unknown"):
        MiniConfig.from_dict({"unet": {"bogus": 1}})


def test_schedules_and_weights() -> None:
    assert learning_rate(0, 1.0, 100, 10, 0.1) == pytest.approx(0.1)
    assert learning_rate(10, 1.0, 100, 10, 0.1) == pytest.approx(1.0)
    assert learning_rate(100, 1.0, 100, 10, 0.1) == pytest.approx(0.1)
    alphas = scheduler().alphas_cumprod
    w = min_snr_weights(alphas, torch.tensor([0, 500, 999]), 5.0)
    assert w[0] < 0.01 and w[1] == pytest.approx(1.0) and w[2] == pytest.approx(1.0)
    lifted = min_snr_weights(alphas, torch.tensor([0, 500, 999]), 5.0, floor=0.5)
    snr_999 = alphas[999] / (1 - alphas[999])
    assert lifted[0] == pytest.approx(float(w[0])) and lifted[2] == pytest.approx(float(0.5 / snr_999), rel=1e-4)
    t = sample_timesteps(4000, 1000, 0.5, 700, torch.Generator().manual_seed(0))
    assert 0 <= int(t.min()) and int(t.max()) < 1000 and 0.6 < float((t >= 700).float().mean()) < 0.7
    module = torch.nn.Linear(2, 2)
    ema = EMA({"m": module}, decay=0.5)
    with torch.no_grad():
        module.weight.add_(1.0)
    ema.update()  # first decay is min(0.5, 1/10): the average moves 90 % of the way
    torch.testing.assert_close(ema.state()["m.weight"], module.weight.detach() - 0.1)


def test_data_batches_are_seeded_and_use_train_content_only() -> None:
    rng_a, _ = batch_rng(0, 1, 5)
    rng_b, _ = batch_rng(0, 1, 5)
    a = data.vae_batch(rng_a, 6, 32, 0.5, (1.0, 1.0, 1.0))
    b = data.vae_batch(rng_b, 6, 32, 0.5, (1.0, 1.0, 1.0))
    assert a.shape == (6, 3, 32, 32) and torch.equal(a, b) and a.min() >= -1 and a.max() <= 1
    rng, _ = batch_rng(0, 2, 0)
    scenes = data.sample_train_scenes(rng, 200, (1.0, 0.0, 0.0))
    assert all(len(s.objects) == 1 and s.objects[0].shape in TRAIN_SHAPES for s in scenes)
    captions = data.sample_captions(scenes, rng, 0.1)
    assert 5 <= sum(c == "" for c in captions) <= 40
    assert set(data.HELDOUT_PHOTOS).isdisjoint(data.TRAIN_PHOTOS)
    views = data.eval_photo_crops(16, ("astronaut",))
    assert views.shape == (5, 3, 16, 16)


def test_caption_targets_follow_what_a_causal_encoder_can_see() -> None:
    text = "a small red star at the top left on a blue background"
    t = data.caption_targets([text], 16)
    ignore = data.IGNORE
    # BOS a small red star at the top left on a blue background EOS...
    assert t["size"][0, :3].tolist() == [ignore, ignore, 0] and t["size"][0, 8].item() == 0
    assert t["color"][0, 2].item() == ignore and t["color"][0, 3:9].unique().tolist() == [COLORS.index("red")]
    assert t["position"][0].ne(ignore).nonzero().flatten().tolist() == [8]
    assert t["position"][0, 8].item() == POSITIONS.index("top left")
    assert t["background"][0, 11].item() == ignore and t["background"][0, 12:].unique().tolist() == [4]
    assert t["cell_shape"][0, :13].unique().tolist() == [ignore]
    assert t["cell_shape"][0, 13].tolist() == [1 + SHAPES.index("star")] + [0] * 8
    assert t["cell_color"][0, 15, 0].item() == COLORS.index("red") and t["cell_color"][0, 15, 1].item() == ignore
    with pytest.raises(ValueError, match="does not fit"):
        data.caption_targets([text], 13)
    with pytest.raises(ValueError):
        data.caption_targets(["a photo of a cat"], 16)
    heads = CaptionHeads(8, V2)
    logits = heads(torch.zeros(1, 16, 8))
    assert logits["cell_shape"].shape == (1, 16, 9, len(SHAPES) + 1)
    assert caption_loss(logits, t).item() > 0


def test_a_world_v3_run_trains_every_stage_on_v3_scenes_and_captions(tmp_path: Path, capsys) -> None:
    v3 = {**TINY, "world": "v3"}
    v3["vae"] = {**TINY["vae"], "object_probs": [1, 1, 1, 1]}
    v3["text"] = {**TINY["text"], "object_probs": [1, 1, 1, 1]}
    levels = [["full", 1.0], ["partial", 1.0], ["short", 1.0]]
    v3["unet"] = {**TINY["unet"], "text": {**TINY["unet"]["text"], "max_length": 64}, "caption_levels": levels}
    v3["unet"]["object_probs"] = [1, 1, 1, 1]
    config = tmp_path / "v3.json"
    config.write_text(json.dumps(v3))
    run, out = tmp_path / "run", tmp_path / "mini-v3"
    args = ["--work", str(run), "--config", str(config), "--no-progress"]
    for stage in ("vae", "text", "unet"):
        assert main([stage, *args]) == 0, stage
    assert main(["assemble", *args, "--out", str(out)]) == 0
    assert json.loads((run / "config.json").read_text())["world"] == "v3"
    assert "fill" in json.loads((run / "text" / "eval.json").read_text())["accuracy"]
    pool = json.loads((run / "unet" / "pool.json").read_text())
    assert pool["key"]["world"] == "v3" and {Scene.from_dict(s).world for s in pool["scenes"]} == {"v3"}
    pipe = StableDiffusionPipeline.from_pretrained(out, local_files_only=True, safety_checker=None)
    assert pipe.tokenizer.model_max_length == 64
    prompt = "a large red striped donut at the top left and a small blue hollow arrow in the center, white background"
    image = generate(pipe, prompt, num_inference_steps=2, generator=torch.Generator().manual_seed(0), output_type="np")
    assert image.shape == (1, 32, 32, 3) and np.isfinite(image).all()
    assert main(["eval", *args, "--out", str(out), "--eval-prompts", "1"]) == 2  # no probe is shipped for v3 yet
    assert "no probe is shipped for world v3 yet" in capsys.readouterr().err
    probe_config = {"model": {"world": "v3", "crop_size": 36, "channels": [4, 4, 4], "pool_after": [0, 1],
                              "hidden": 8}, "steps": 1, "batch_size": 2}  # fmt: skip
    train_probe(TrainConfig.from_dict(probe_config), tmp_path / "probe-v3", progress=False)
    probe_args = ["--probe", str(tmp_path / "probe-v3"), "--eval-prompts", "2"]
    assert main(["eval", *args, "--out", str(out), *probe_args]) == 0
    scores = json.loads((run / "eval.json").read_text())
    assert {"single", "double", "triple", "partial"} <= set(scores) and "fill" in scores["triple"]
    assert {"objects", "all"} <= set(scores["partial"]) and 0 <= scores["partial"]["all"] <= 1


def test_training_captions_mix_levels_of_detail() -> None:
    scenes = sample_train_scenes(np.random.default_rng(0), 60, (1, 1, 1, 1), world="v3")
    levels = (("full", 1.0), ("partial", 1.0), ("short", 1.0))
    texts = data.sample_captions(scenes, np.random.default_rng(1), 0.1, levels)
    assert sum(t == "" for t in texts) >= 2 and any("shapes" in t or "objects" in t for t in texts)
    assert sum(len(t.split()) for t in texts) < sum(len(caption(s).split()) for s in scenes)
    again = data.sample_captions(scenes, np.random.default_rng(1), 0.1, levels)
    assert texts == again
    v2 = sample_train_scenes(np.random.default_rng(0), 5, (1, 1, 1))
    rng = np.random.default_rng(2)
    rng.random(len(v2))  # the empty-caption draws: v2's full captions follow them as before levels existed
    assert data.sample_captions(v2, np.random.default_rng(2), 0.0) == [caption(s, rng) for s in v2]
