import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from diffinv.bench.pie import background_scores, decode_mask, load_pie
from diffinv.errors import DiffinvError


def _reference_decode(rle, height, width):
    """PnPInversion's mask_decode semantics, written as a plain loop: set runs, clip at the end, mark the border."""
    flat = np.zeros(height * width)
    for i in range(0, len(rle), 2):
        for j in range(min(rle[i + 1], height * width - rle[i])):
            flat[rle[i] + j] = 1
    mask = flat.reshape(height, width)
    mask[0, :] = mask[-1, :] = mask[:, 0] = mask[:, -1] = 1
    return mask


def _entries():
    return {
        "000000000002": {
            "image_path": "1_change_object_80/000000000002.png",
            "original_prompt": "a [cat] sitting on a [red] sofa",
            "editing_prompt": "a [dog] sitting on a [blue] sofa",
            "editing_instruction": "Make the cat a dog",
            "editing_type_id": "1",
            "blended_word": "cat dog",
            "mask": [v for row in range(96, 128) for v in (512 * row + 128, 64)],  # rows 96-127, cols 128-191
        },
        "000000000001": {
            "image_path": "0_random_140/000000000001.png",
            "original_prompt": "a slanted mountain bicycle",
            "editing_prompt": "a slanted [rusty] mountain bicycle",
            "editing_instruction": "Make the frame rusty",
            "editing_type_id": 0,
            "blended_word": "",
            "mask": [],
        },
        "000000000003": {
            "image_path": "9_change_style_80/000000000003.png",
            "original_prompt": "a photo of a house",
            "editing_prompt": "a [watercolor painting] of a house",
            "editing_instruction": "Make it a watercolor",
            "editing_type_id": "9",
            "blended_word": "photo painting",
            "mask": [512 * 512 - 10, 100],  # runs past the last pixel: clipped, as PnPInversion does
        },
    }


def _write(root, entries, *, data_dir=False):
    base = root / "data" if data_dir else root
    for i, entry in enumerate(entries.values()):
        path = base / "annotation_images" / entry["image_path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(np.full((32, 32, 3), 10 * i, dtype=np.uint8)).save(path)
    base.mkdir(parents=True, exist_ok=True)
    (base / "mapping_file.json").write_text(json.dumps(entries))
    return root


def test_decode_mask_row_major_with_border():
    mask = decode_mask([7, 3, 14, 1, 20, 0], height=5, width=6)
    expected = np.array(
        [
            [1, 1, 1, 1, 1, 1],
            [1, 1, 1, 1, 0, 1],  # 7, 8, 9 = row 1, cols 1-3
            [1, 0, 1, 0, 0, 1],  # 14 = row 2, col 2; the empty run at 20 sets nothing
            [1, 0, 0, 0, 0, 1],
            [1, 1, 1, 1, 1, 1],
        ],
        dtype=bool,
    )
    assert mask.dtype == bool and mask.shape == (5, 6)
    np.testing.assert_array_equal(mask, expected)
    full = decode_mask([])
    assert full.shape == (512, 512) and full.sum() == 4 * 511 and not full[1:-1, 1:-1].any()


def test_decode_mask_matches_reference_loop():
    rng = np.random.default_rng(0)
    for height, width in [(7, 11), (512, 512)]:
        total = height * width
        starts = np.sort(rng.integers(0, total, 8))
        rle = [int(v) for start in starts for v in (start, rng.integers(0, total // 4))]
        np.testing.assert_array_equal(decode_mask(rle, height, width), _reference_decode(rle, height, width) == 1)


@pytest.mark.parametrize(
    ("rle", "match"),
    [
        ([3, 2, 5], "odd length 3"),
        ([3, -2], "item 1 is negative"),
        ([3, 2.0], "item 1 is 2.0, not an integer"),
        ([True, 2], "not an integer"),
        ([0, 1, 30, 1], r"run 1 starts at pixel 30, outside the 5×6 image"),
        ("0 1", "expected a list"),
    ],
)
def test_decode_mask_rejects_bad_rle(rle, match):
    with pytest.raises(DiffinvError, match=match):
        decode_mask(rle, height=5, width=6)


def test_load_pie_reads_sorted_samples(tmp_path):
    samples = load_pie(_write(tmp_path, _entries()))
    assert [s.id for s in samples] == ["000000000001", "000000000002", "000000000003"]
    rusty, cat, house = samples
    assert cat.source_prompt == "a cat sitting on a red sofa" and cat.target_prompt == "a dog sitting on a blue sofa"
    assert cat.edited_words == (("cat", "red"), ("dog", "blue")) and cat.blended_words == ("cat", "dog")
    assert cat.editing_type == "1" and cat.instruction == "Make the cat a dog"
    assert rusty.edited_words == ((), ("rusty",)) and rusty.blended_words == () and rusty.editing_type == "0"
    assert house.edited_words == ((), ("watercolor painting",))
    assert house.target_prompt == "a watercolor painting of a house"
    assert cat.image_path == tmp_path / "annotation_images" / "1_change_object_80" / "000000000002.png"
    assert cat.load_image().mode == "RGB" and cat.load_image().size == (32, 32)
    mask = cat.mask()
    assert mask.shape == (512, 512) and mask[96:128, 128:192].all() and mask.sum() == 4 * 511 + 32 * 64
    small = cat.mask(32, 64)  # nearest: rows 6-7 and cols 16-23 land in the region; the border is re-marked
    assert small.shape == (32, 64) and small[[0, -1], :].all() and small[:, [0, -1]].all()
    assert small[6:8, 16:24].all() and small.sum() == 2 * 64 + 2 * 30 + 16
    np.testing.assert_array_equal(house.mask(), decode_mask(house.mask_rle))


def test_load_pie_accepts_data_folder_and_limits_deterministically(tmp_path):
    entries = _entries()
    for i in range(4, 9):
        entries[f"00000000000{i}"] = dict(entries["000000000001"], image_path=f"0_random_140/00000000000{i}.png")
    root = _write(tmp_path, entries, data_dir=True)
    assert len(load_pie(root)) == 8
    picked = [s.id for s in load_pie(root, limit=3, seed=1)]
    assert len(picked) == 3 and picked == sorted(picked)
    assert picked == [s.id for s in load_pie(root, limit=3, seed=1)]
    assert len(load_pie(root, limit=100)) == 8
    with pytest.raises(DiffinvError, match="≥ 1"):
        load_pie(root, limit=0)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda e: e.pop("original_prompt"), "entry '000000000002': missing 'original_prompt'"),
        (lambda e: e.update(editing_prompt=3), "'editing_prompt' must be a string, got int"),
        (lambda e: e.update(editing_type_id=[1]), "'editing_type_id' must be a string or an integer"),
        (lambda e: e.update(blended_word=None), "'blended_word' must be a string, got NoneType"),
        (lambda e: e.update(mask="1 2"), "'mask' must be a list of integers"),
        (lambda e: e.update(mask=[1, 2, 3]), "'mask': odd length 3"),
        (lambda e: e.update(mask=[512 * 512, 1]), "'mask': run 0 starts at pixel 262144, outside the 512×512"),
        (lambda e: e.update(mask=[0, "1"]), "'mask': item 1 is '1', not an integer"),
        (lambda e: e.update(image_path="1_change_object_80/nope.png"), "entry '000000000002': image not found"),
        (lambda e: e.update(image_path="../escape.png"), "must be relative to annotation_images"),
    ],
)
def test_load_pie_rejects_bad_entries(tmp_path, change, match):
    entries = _entries()
    root = _write(tmp_path, entries)
    change(entries["000000000002"])
    (root / "mapping_file.json").write_text(json.dumps(entries))
    with pytest.raises(DiffinvError, match=match) as info:
        load_pie(root)
    assert "mapping_file.json" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("content", "match"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ("{}", "no entries"),
        ('{"a": 3}', "entry 'a': expected an object, got int"),
    ],
)
def test_load_pie_rejects_bad_files(tmp_path, content, match):
    root = _write(tmp_path, _entries())
    (root / "mapping_file.json").write_text(content)
    with pytest.raises(DiffinvError, match=match):
        load_pie(root)


def test_load_pie_missing_layout(tmp_path):
    with pytest.raises(DiffinvError, match="expected mapping_file.json"):
        load_pie(tmp_path)
    (tmp_path / "mapping_file.json").write_text("{}")
    with pytest.raises(DiffinvError, match="expected annotation_images"):
        load_pie(tmp_path)


def test_background_scores_only_look_outside_the_mask():
    rng = np.random.default_rng(0)
    source = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    mask = decode_mask([32 * 10 + 10, 8, 32 * 11 + 10, 8], height=32, width=32)
    edited = source.copy()
    edited[10:12, 10:18] = 255 - edited[10:12, 10:18]  # inside the edit region
    edited[0, :] = 0  # the border counts as edited (PnPInversion's convention)
    seen = []
    scores = background_scores(edited, source, mask, lpips=lambda a, b: seen.append((a, b)) or 0.0)
    assert scores["psnr"] == math.inf and scores["mse"] == 0.0 and scores["ssim"] == pytest.approx(1.0)
    assert scores["lpips"] == 0.0 and seen[0][0].shape == (1, 3, 32, 32)
    assert not seen[0][0][0, :, 10:12, 10:18].any() and not seen[0][1][0, :, 0, :].any()

    edited[5, 5] = source[5, 5] ^ 0x80  # one background pixel changed by 128 levels in each channel
    scores = background_scores(edited, source, mask)
    mse = (128 / 255) ** 2 * 3 / (32 * 32 * 3)  # mean over the whole image, the masked zeros included
    assert set(scores) == {"psnr", "ssim", "mse"}
    assert scores["mse"] == pytest.approx(mse) and scores["psnr"] == pytest.approx(10 * math.log10(1 / mse))
    tensors = background_scores(
        torch.from_numpy(edited).permute(2, 0, 1).float() / 255, torch.from_numpy(source).permute(2, 0, 1)[None], mask
    )
    assert tensors == pytest.approx(scores)


def test_background_scores_edge_cases():
    image = np.zeros((8, 8, 3), dtype=np.uint8)
    everything = np.ones((8, 8), dtype=bool)
    assert all(math.isnan(v) for v in background_scores(image, image, everything).values())
    with pytest.raises(DiffinvError, match="mask shape"):
        background_scores(image, image, np.zeros((4, 4)))
    with pytest.raises(DiffinvError, match="size mismatch"):
        background_scores(image, np.zeros((4, 4, 3), dtype=np.uint8), np.zeros((8, 8)))
