import json

import numpy as np
import pytest
from PIL import Image

from diffinv.bench.datasets import load_dataset
from diffinv.errors import DiffinvError


def _image(path, value):
    Image.fromarray(np.full((16, 16, 3), value, dtype=np.uint8)).save(path)


def test_folder_with_captions(tmp_path):
    for i in range(3):
        _image(tmp_path / f"img{i}.png", 40 * i)
        (tmp_path / f"img{i}.txt").write_text(f"caption {i}\n")
    _image(tmp_path / "uncaptioned.png", 7)
    samples = load_dataset(f"folder:{tmp_path}")
    assert [s.id for s in samples] == ["img0", "img1", "img2"]
    assert samples[1].caption == "caption 1" and np.asarray(samples[1].load())[0, 0, 0] == 40
    assert [s.id for s in load_dataset(str(tmp_path))] == ["img0", "img1", "img2"]


def test_coco_first_caption_and_deterministic_limit(tmp_path):
    (tmp_path / "annotations").mkdir()
    (tmp_path / "val2017").mkdir()
    images = [{"id": i, "file_name": f"{i:012d}.jpg"} for i in range(1, 6)]
    annotations = [{"id": 100 + 2 * i, "image_id": i, "caption": f"second {i}"} for i in range(1, 6)]
    annotations += [{"id": 99 + 2 * i, "image_id": i, "caption": f" first {i} "} for i in range(1, 6)]
    (tmp_path / "annotations" / "captions_val2017.json").write_text(
        json.dumps({"images": images, "annotations": annotations})
    )
    for image in images:
        _image(tmp_path / "val2017" / image["file_name"], image["id"])
    samples = load_dataset(f"coco:{tmp_path}")
    assert [s.caption for s in samples] == [f"first {i}" for i in range(1, 6)]
    picked = [s.id for s in load_dataset(f"coco:{tmp_path}", limit=3, seed=1)]
    assert picked == [s.id for s in load_dataset(f"coco:{tmp_path}", limit=3, seed=1)] and len(picked) == 3


def test_shapes_and_photos():
    shapes = load_dataset("shapes:5")
    assert len(shapes) == 5 and shapes[0].scene is not None
    assert shapes[0].load().size == (64, 64) and "background" in shapes[0].caption
    photos = load_dataset("photos")
    assert len(photos) >= 15 and all(p.caption for p in photos)
    assert load_dataset("photos", limit=1)[0].load().mode == "RGB"


@pytest.mark.parametrize(
    ("spec", "match"),
    [("nothing:here", "unknown dataset"), ("shapes:many", "must be a number"), ("coco:/nonexistent", "annotations")],
)
def test_bad_specs(spec, match):
    with pytest.raises(DiffinvError, match=match):
        load_dataset(spec)


def test_empty_folder(tmp_path):
    with pytest.raises(DiffinvError, match="no images"):
        load_dataset(f"folder:{tmp_path}")
