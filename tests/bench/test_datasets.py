import json

import numpy as np
import pytest
from PIL import Image

from diffinv.bench.datasets import load_dataset
from diffinv.errors import DiffinvError
from diffinv.shapes.descriptions import ATTRIBUTES


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


def test_partial_captions_leave_things_out_and_say_what_they_mention():
    full, partial = load_dataset("shapes:20"), load_dataset("shapes-partial:20")
    assert [s.scene for s in full] == [s.scene for s in partial]
    assert {s.id.rsplit("-", 1)[0] for s in partial} == {"shapes-partial"} and full[0].id == "shapes-00000"
    assert all(
        len(p.caption) < len(f.caption) or not p.description.mentions.background
        for p, f in zip(partial, full, strict=True)
    )
    everything = set(ATTRIBUTES)
    assert all(m == everything for s in full for m in s.description.mentions.objects)
    assert sum(m != everything for s in partial for m in s.description.mentions.objects) > 10
    v3 = load_dataset("shapes-partial:5@v3")
    assert {s.scene.world for s in v3} == {"v3"} and v3[0].id == "shapes-partial-v3-00000"
    assert [s.caption for s in v3] == [s.caption for s in load_dataset("shapes-partial:5@v3")]


def test_shapes_and_photos():
    shapes = load_dataset("shapes:5")
    assert len(shapes) == 5 and shapes[0].scene is not None
    assert shapes[0].load().size == (64, 64) and "background" in shapes[0].caption
    photos = load_dataset("photos")
    assert len(photos) >= 15 and all(p.caption for p in photos)
    assert load_dataset("photos", limit=1)[0].load().mode == "RGB"


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("nothing:here", "unknown dataset"),
        ("shapes:many", "must be a number"),
        ("shapes:0", "must be 1 to"),
        ("shapes:-1", "must be 1 to"),
        ("shapes-partial:1000000000", "must be 1 to"),
        ("shapes-partial:3@v9", "unknown Shapes world 'v9'"),
        ("coco:/nonexistent", "annotations"),
    ],
)
def test_bad_specs(spec, match):
    with pytest.raises(DiffinvError, match=match):
        load_dataset(spec)


def test_empty_folder(tmp_path):
    with pytest.raises(DiffinvError, match="no images"):
        load_dataset(f"folder:{tmp_path}")
