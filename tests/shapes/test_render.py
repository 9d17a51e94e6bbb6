"""Renderer of the Shapes world: determinism, resolution, anti-aliasing, masks and shape identity."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from diffinv.shapes import PALETTE, SHAPES, Scene, ShapeObject, dataset, render, render_masks
from diffinv.shapes.render import object_coverage
from diffinv.shapes.vocab import SIZE_FRACTION


def _single(shape: str, size: str = "small", position: str = "center", offset=(0.0, 0.0)) -> Scene:
    return Scene("white", (ShapeObject(shape, "red", size, position, offset),))


@pytest.fixture(scope="module")
def scenes() -> list[Scene]:
    return dataset("train", 24, seed=11) + dataset("heldout_shape", 8, seed=11)


def test_render_is_deterministic(scenes: list[Scene]) -> None:
    for scene in scenes[:8]:
        first = render(scene, 64)
        assert render(scene, 64).tobytes() == first.tobytes()
        assert render(Scene.from_json(scene.to_json()), 64).tobytes() == first.tobytes()


@pytest.mark.parametrize("size", [1, 7, 32, 64, 100, 128, 256])
def test_any_size_has_right_shape_and_dtype(size: int, scenes: list[Scene]) -> None:
    image = render(scenes[0], size)
    assert image.shape == (size, size, 3) and image.dtype == np.uint8
    masks = render_masks(scenes[0], size)
    assert masks.shape == (len(scenes[0].objects), size, size) and masks.dtype == bool


@pytest.mark.parametrize("size", [0, -3, 2.5, True])
def test_invalid_size_raises(size: object) -> None:
    with pytest.raises(ValueError, match="size"):
        render(_single("circle"), size)  # type: ignore[arg-type]


def test_background_and_objects_have_exact_colours(scenes: list[Scene]) -> None:
    for scene in scenes:
        image = render(scene, 64)
        assert (image[0, 0] == PALETTE[scene.background]).all() or any(o.cell == (0, 0) for o in scene.objects)
        colors = {tuple(int(v) for v in px) for px in image.reshape(-1, 3)}
        assert PALETTE[scene.background] in colors
        for obj in scene.objects:
            assert PALETTE[obj.color] in colors


def test_edges_are_anti_aliased() -> None:
    for shape in SHAPES:
        image = render(_single(shape, "large"), 64).astype(int)
        red, white = np.array(PALETTE["red"]), np.array(PALETTE["white"])
        pure = (image == red).all(-1) | (image == white).all(-1)
        assert (~pure).sum() >= 8, f"{shape} has no intermediate edge pixels"
        # intermediate pixels lie on the segment between the two colours
        t = ((image[~pure] - white) @ (red - white)) / ((red - white) @ (red - white))
        assert ((t > 0) & (t < 1)).all()


def _eroded(mask: np.ndarray) -> np.ndarray:
    padded = np.pad(mask, 1)
    h, w = mask.shape
    shifts = [padded[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    return np.logical_and.reduce(shifts)


def test_masks_match_rendered_pixels(scenes: list[Scene]) -> None:
    for scene in scenes:
        for size in (64, 97):
            image = render(scene, size)
            masks = render_masks(scene, size)
            assert masks.sum(axis=0).max() <= 1, "masks must be disjoint"
            for obj, mask in zip(scene.objects, masks, strict=True):
                assert mask.any()
                assert (image[_eroded(mask)] == PALETTE[obj.color]).all()
            untouched = np.logical_and.reduce([object_coverage(o, size) == 0 for o in scene.objects])
            assert (image[untouched] == PALETTE[scene.background]).all()
            assert not (masks.any(axis=0) & untouched).any()


def test_later_objects_are_drawn_on_top() -> None:
    below = ShapeObject("square", "red", "large", "center")
    above = ShapeObject("circle", "blue", "small", "center")
    scene = Scene.__new__(Scene)  # overlapping objects are not valid scenes; bypass validation on purpose
    object.__setattr__(scene, "background", "white")
    object.__setattr__(scene, "objects", (below, above))
    image, masks = render(scene, 64), render_masks(scene, 64)
    assert (image[32, 32] == PALETTE["blue"]).all()
    assert masks[1, 32, 32] and not masks[0, 32, 32] and masks[0, 32, 26]


def test_objects_stay_inside_their_cell() -> None:
    size = 60
    for shape, obj_size, offset in itertools.product(
        SHAPES, ("small", "large"), itertools.product((-1.0, 1.0), repeat=2)
    ):
        for position, (row, col) in (("top left", (0, 0)), ("center", (1, 1)), ("bottom right", (2, 2))):
            coverage = object_coverage(ShapeObject(shape, "red", obj_size, position, offset), size)
            ys, xs = np.nonzero(coverage)
            cell = size // 3
            assert xs.min() >= col * cell and xs.max() < (col + 1) * cell
            assert ys.min() >= row * cell and ys.max() < (row + 1) * cell


def test_sizes_match_their_fraction_of_the_image() -> None:
    size = 192
    for obj_size, fraction in SIZE_FRACTION.items():
        mask = render_masks(_single("circle", obj_size), size)[0]
        width = np.nonzero(mask.any(axis=0))[0]
        assert abs((width.max() - width.min() + 1) - fraction * size) <= 2
    assert SIZE_FRACTION["small"] == pytest.approx(1 / 6, abs=0.02)
    assert SIZE_FRACTION["large"] == pytest.approx(1 / 3, abs=0.04)


def test_offset_moves_the_object() -> None:
    centred = render_masks(_single("square"), 90)[0]
    moved = render_masks(_single("square", offset=(1.0, -1.0)), 90)[0]
    (cy0, cx0), (cy1, cx1) = (np.argwhere(m).mean(axis=0) for m in (centred, moved))
    assert cx1 > cx0 + 3 and cy1 < cy0 - 3


@pytest.mark.parametrize("obj_size", ["small", "large"])
def test_every_shape_looks_different(obj_size: str) -> None:
    masks = {shape: render_masks(_single(shape, obj_size), 64)[0] for shape in SHAPES}
    for a, b in itertools.combinations(SHAPES, 2):
        iou = (masks[a] & masks[b]).sum() / (masks[a] | masks[b]).sum()
        assert iou < 0.9, f"{a} and {b} overlap too much at 64 px ({obj_size}): IoU {iou:.3f}"


def test_shapes_fill_a_reasonable_part_of_their_box() -> None:
    for shape in SHAPES:
        mask = render_masks(_single(shape, "large"), 120)[0]
        fraction = mask.sum() / (SIZE_FRACTION["large"] * 120) ** 2
        assert 0.25 < fraction <= 1.0, f"{shape} covers {fraction:.2f} of its box"
