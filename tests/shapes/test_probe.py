"""The shipped attribute probe: loading, accuracy on fresh renders, input handling and scoring."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from diffinv.errors import DiffinvError
from diffinv.shapes import BACKGROUNDS, COLORS, SIZES, Scene, ShapeObject, dataset, render
from diffinv.shapes.probe import (
    AGREEMENT_KEYS,
    DEFAULT_PATH,
    NUM_CELLS,
    SLOT_CLASSES,
    ProbeConfig,
    ProbeOutput,
    ShapesProbe,
    decode_scenes,
    default_probe,
    describe,
    encode_targets,
    mean_agreement,
    probe_loss,
    read_scenes,
    scene_agreement,
    to_probe_input,
)

pytestmark = pytest.mark.stored_data  # reads shipped/stored numbers: also run on other CPUs (.ci/run)

N_IMAGES = 100
EVAL_SEED = 7  # any seed: the probe never trains on the test split


@pytest.fixture(scope="module")
def probe() -> ShapesProbe:
    return default_probe()


@pytest.fixture(scope="module")
def test_scenes() -> list[Scene]:
    return dataset("test", N_IMAGES, seed=EVAL_SEED)


@pytest.fixture(scope="module")
def test_images(test_scenes: list[Scene]) -> list[np.ndarray]:
    return [render(s) for s in test_scenes]


def test_shipped_probe_loads_offline_and_is_small(probe: ShapesProbe) -> None:
    assert (DEFAULT_PATH / "probe.safetensors").stat().st_size < 4_000_000
    assert not probe.training
    assert probe.num_parameters() < 1_000_000
    assert ShapesProbe.from_pretrained(DEFAULT_PATH).config == probe.config
    assert probe.config.world == "v2" and probe.fill_head is None  # its record predates worlds: read as v2


def test_accuracy_on_fresh_test_renders(probe: ShapesProbe, test_scenes: list[Scene], test_images) -> None:
    scores = mean_agreement(read_scenes(test_images, probe), test_scenes)
    for key in ("background", "shape", "color", "size", "position"):
        assert scores[key] >= 0.95, scores


def test_reads_heldout_shapes(probe: ShapesProbe) -> None:
    truths = dataset("heldout_shape", 30, seed=EVAL_SEED)
    preds = read_scenes([render(s) for s in truths], probe)
    assert mean_agreement(preds, truths)["shape"] >= 0.95
    assert sum(o.shape == "moon" for p in preds for o in p.objects) >= 28


def test_input_types_agree(probe: ShapesProbe, test_images: list[np.ndarray]) -> None:
    arrays = test_images[:8]
    pil = [Image.fromarray(a) for a in arrays]
    tensor = torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).float() / 255.0
    from_arrays = read_scenes(arrays, probe)
    assert read_scenes(pil, probe) == from_arrays
    assert read_scenes(tensor, probe) == from_arrays
    assert read_scenes(np.stack(arrays), probe) == from_arrays
    assert torch.equal(to_probe_input(pil), tensor)


def test_other_sizes_and_modes_are_resized(probe: ShapesProbe, test_scenes: list[Scene]) -> None:
    scene = test_scenes[0]
    big = Image.fromarray(render(scene, size=128)).convert("RGBA")
    assert to_probe_input([big]).shape == (1, 3, 64, 64)
    assert read_scenes([big], probe)[0] == scene.without_jitter().canonical()


def test_read_scenes_are_canonical_without_jitter(probe: ShapesProbe, test_images) -> None:
    for scene in read_scenes(test_images[:10], probe):
        assert scene == scene.without_jitter().canonical()


@pytest.mark.parametrize(
    "bad",
    [
        np.zeros((64, 64, 3), dtype=np.uint8),  # one image, not a batch
        [np.zeros((64, 64, 3), dtype=np.float32)],  # wrong dtype
        [np.zeros((64, 64), dtype=np.uint8)],  # no channels
        [np.zeros((64, 64, 4), dtype=np.uint8)],  # RGBA array
        torch.zeros(2, 3, 64, 64, dtype=torch.uint8),  # integer tensor
        torch.zeros(3, 64, 64),  # no batch axis
        torch.zeros(2, 1, 64, 64),  # one channel
        torch.full((1, 3, 64, 64), float("nan")),
        [],
        ["image.png"],
        "image.png",
    ],
)
def test_bad_input_raises_value_error(probe: ShapesProbe, bad) -> None:
    with pytest.raises(ValueError):
        read_scenes(bad, probe)


def test_forward_checks_its_input(probe: ShapesProbe) -> None:
    with pytest.raises(ValueError):
        probe(torch.zeros(1, 3, 32, 32))


SCENE = Scene(
    "gray",
    (
        ShapeObject("star", "red", "large", "top left"),
        ShapeObject("moon", "blue", "small", "center", offset=(0.5, -0.5)),
    ),
)


def test_agreement_identical_scenes() -> None:
    scores = scene_agreement(SCENE, SCENE.canonical().without_jitter())
    assert set(scores) == set(AGREEMENT_KEYS)
    assert all(v == 1.0 for v in scores.values())


def test_agreement_one_wrong_colour() -> None:
    scores = scene_agreement(SCENE.replace_object(0, color="green"), SCENE)
    assert scores["color"] == 0.5
    assert scores["all"] == 0.0
    assert scores["shape"] == scores["size"] == scores["position"] == scores["background"] == 1.0


def test_agreement_missing_and_spurious_objects() -> None:
    missing = SCENE.remove_object(1)
    assert scene_agreement(missing, SCENE)["position"] == 0.5
    assert scene_agreement(missing, SCENE)["shape"] == 0.5
    moved = SCENE.replace_object(1, position="bottom")  # one spurious, one missing: 3 slots, 1 shared
    scores = scene_agreement(moved, SCENE)
    assert scores["position"] == pytest.approx(1 / 3)
    assert scores["color"] == pytest.approx(1 / 3)
    assert scene_agreement(SCENE.replace(background="white"), SCENE)["background"] == 0.0


def test_describe_is_json() -> None:
    data = json.loads(json.dumps(describe(SCENE)))
    assert data == {
        "background": "gray",
        "objects": [
            {"shape": "star", "color": "red", "size": "large", "position": "top left"},
            {"shape": "moon", "color": "blue", "size": "small", "position": "center"},
        ],
    }


def _logits(scene: Scene, scale: float = 10.0) -> ProbeOutput:
    """Confident logits saying ``scene``."""
    targets = encode_targets([scene])
    sizes = (len(SLOT_CLASSES), len(COLORS), len(SIZES), len(BACKGROUNDS))
    shape, color, size, background = (
        F.one_hot(t.clamp_min(0), n).float().view(1, NUM_CELLS, n) * scale
        for t, n in zip(targets[:4], sizes, strict=True)
    )
    return ProbeOutput(shape, color, size, background[:, 0])


def test_decoding_keeps_scenes_valid() -> None:
    """Logits asking for 0 or 9 objects, or a colour invisible on the background, still give valid scenes."""
    logits = _logits(SCENE)
    assert decode_scenes(logits) == [SCENE.without_jitter().canonical()]
    empty = torch.zeros_like(logits.shape)
    empty[..., 0] = 10.0
    empty[0, 4, 0] = 1.0  # the centre is the least empty cell
    (one,) = decode_scenes(logits._replace(shape=empty))
    assert [o.position for o in one.objects] == ["center"]
    crowded = torch.zeros_like(logits.shape)
    crowded[..., 1] = torch.arange(9, dtype=torch.float32)  # every cell a circle, later cells more confident
    (three,) = decode_scenes(logits._replace(shape=crowded))
    assert [o.position for o in three.objects] == ["bottom left", "bottom", "bottom right"]
    black_color = torch.zeros_like(logits.color)
    black_color[..., COLORS.index("black")] = 10.0
    black_background = torch.zeros_like(logits.background)
    black_background[0, BACKGROUNDS.index("black")] = 10.0
    (scene,) = decode_scenes(logits._replace(color=black_color, background=black_background))
    assert scene.background == "black" and all(o.color != "black" for o in scene.objects)


def test_loss_and_config_round_trip() -> None:
    config = ProbeConfig(channels=(4, 4, 4, 4), hidden=8)
    assert ProbeConfig.from_dict(json.loads(json.dumps(config.to_dict()))) == config
    record = {k: v for k, v in config.to_dict().items() if k != "world"}  # as records written before worlds
    assert ProbeConfig.from_dict(record) == config and config.world == "v2"
    with pytest.raises(DiffinvError, match="unknown setting"):
        ProbeConfig.from_dict({**record, "layers": 3})
    model = ShapesProbe(config)
    scenes = dataset("train", 2, seed=0)
    pixels = to_probe_input([render(s) for s in scenes])
    loss, terms = probe_loss(model.forward_cells(model.crops(pixels)), encode_targets(scenes))
    assert loss.ndim == 0 and torch.isfinite(loss) and set(terms) == {"shape", "color", "size", "background"}
    loss.backward()
    output = model.eval()(pixels)
    assert output.shape.shape == (2, 9, 11) and output.background.shape == (2, 7)
    with pytest.raises(ValueError):
        ProbeConfig(crop_size=8)


def test_from_pretrained_missing_folder(tmp_path) -> None:
    with pytest.raises(DiffinvError):
        ShapesProbe.from_pretrained(tmp_path)
