"""Shapes world v3 beside v2: v3 scenes (more shapes, up to four objects, overlaps, fills) sample, validate,
serialise and render; v2 scenes and their records are what they were."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from diffinv.shapes import Scene, ShapeObject, content_key, dataset, render, render_masks
from diffinv.shapes.render import object_box, object_coverage
from diffinv.shapes.splits import is_train_object
from diffinv.shapes.world import V2, V3, get_world


@pytest.fixture(scope="module")
def v3_scenes() -> list[Scene]:
    return dataset("train", 400, seed=0, world="v3")


def test_v2_records_keep_their_form() -> None:
    scene = dataset("train", 1, seed=0)[0]
    data = scene.to_dict()
    assert scene.world == "v2" and "world" not in data and all("fill" not in o for o in data["objects"])
    assert Scene.from_dict(data) == scene and ";v2" not in content_key(scene) and "|" not in content_key(scene)


def test_v3_scenes_use_the_v3_vocabulary(v3_scenes: list[Scene]) -> None:
    objects = [o for s in v3_scenes for o in s.objects]
    assert {s.world for s in v3_scenes} == {"v3"}
    assert Counter(len(s.objects) for s in v3_scenes).keys() == {1, 2, 3, 4}
    assert len({o.shape for o in objects}) >= 30 and all(is_train_object(o, V3) for o in objects)
    fills = Counter(o.fill for o in objects)
    assert set(fills) == {"solid", "striped", "outlined"} and 0.6 < fills["solid"] / len(objects) < 0.8
    heldout = dataset("heldout_shape", 50, seed=0, world="v3")
    assert all(sum(o.shape in V3.heldout_shapes for o in s.objects) == 1 for s in heldout)
    assert {o.shape for s in heldout for o in s.objects} & set(V3.heldout_shapes) == set(V3.heldout_shapes)


def test_v3_scenes_round_trip_and_are_checked_against_their_world(v3_scenes: list[Scene]) -> None:
    for scene in v3_scenes[:50]:
        assert Scene.from_json(json.dumps(scene.to_dict())) == scene
    striped = ShapeObject("donut", "red", "large", "center", fill="striped")
    assert Scene("white", (striped,), "v3").objects[0].fill == "striped"
    with pytest.raises(ValueError, match="'donut' is not a shape of world v2"):
        Scene("white", (striped.replace(fill="solid"),))
    with pytest.raises(ValueError, match="fill 'striped' is not one of world v2's"):
        Scene("white", (striped.replace(shape="circle"),))
    with pytest.raises(ValueError, match="world v3 has 1 to 4 objects"):
        Scene("white", tuple(striped.replace(position=p) for p in ("top", "left", "center", "right", "bottom")), "v3")
    with pytest.raises(ValueError, match="unknown Shapes world 'v9'"):
        get_world("v9")
    with pytest.raises(ValueError, match="only large objects have fills, not small"):
        Scene("white", (striped.replace(size="small"),), "v3")
    assert all(o.fill == "solid" for s in v3_scenes for o in s.objects if o.size == "small")
    with pytest.raises(ValueError, match="invalid fill 'dotted'"):
        striped.replace(fill="dotted")


def test_v3_objects_overlap_and_stay_in_the_image(v3_scenes: list[Scene]) -> None:
    overlapping = 0
    for scene in v3_scenes[:150]:
        for obj in scene.objects:
            cx, cy, half = object_box(obj, world=V3)
            assert half <= cx <= 1 - half and half <= cy <= 1 - half
        solid = [object_coverage(o.replace(fill="solid"), 64, world=V3) > 0 for o in scene.objects]
        overlapping += any((a & b).any() for i, a in enumerate(solid) for b in solid[i + 1 :])
        masks = render_masks(scene, 64)
        assert masks.shape[0] == len(scene.objects) and (masks.sum(0) <= 1).all()
    assert overlapping >= 10
    assert V3.overlaps and not V2.overlaps


def test_fills_paint_parts_of_the_silhouette() -> None:
    obj = ShapeObject("circle", "red", "large", "center")
    solid, striped, outlined = (object_coverage(obj.replace(fill=f), 64, world=V3) for f in V3.fills)
    assert (outlined <= solid + 1e-6).all() and (striped <= solid + 1e-6).all() and (outlined <= striped + 1e-6).all()
    assert 0.2 * solid.sum() < outlined.sum() < 0.5 * solid.sum() < striped.sum() < 0.9 * solid.sum()
    scene = Scene("white", (obj.replace(fill="outlined"),), "v3")
    image = render(scene, 64)
    assert (image[32, 32] == 245).all() and (image[32, 18:24] == (220, 40, 40)).all(-1).any()  # hollow, red rim
    np.testing.assert_array_equal(image, render(scene, 64))
