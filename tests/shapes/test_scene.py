"""Scene model and vocabulary of the Shapes world."""

from __future__ import annotations

import json

import pytest

from diffinv.shapes import (
    ALLOWED_COLORS,
    BACKGROUNDS,
    COLORS,
    HELDOUT_SHAPES,
    NOVEL_COMBOS,
    PALETTE,
    POSITIONS,
    SHAPES,
    SIZES,
    TRAIN_SHAPES,
    Scene,
    ShapeObject,
)
from diffinv.shapes.vocab import MIN_CONTRAST, color_distance


def _scene() -> Scene:
    return Scene(
        "yellow",
        (
            ShapeObject("circle", "red", "large", "left", (0.5, -0.25)),
            ShapeObject("star", "blue", "small", "top right"),
        ),
    )


def test_vocabulary_sizes() -> None:
    assert len(SHAPES) >= 7 and {"circle", "square", "triangle", "star", "heart", "cross", "ring"} <= set(SHAPES)
    assert len(COLORS) >= 8 and len(BACKGROUNDS) >= 6 and len(SIZES) >= 2 and len(POSITIONS) == 9
    assert HELDOUT_SHAPES and set(HELDOUT_SHAPES) <= set(SHAPES)
    assert set(TRAIN_SHAPES) == set(SHAPES) - set(HELDOUT_SHAPES)
    assert all(name in PALETTE for name in (*COLORS, *BACKGROUNDS))
    assert all(len(rgb) == 3 and all(0 <= v <= 255 for v in rgb) for rgb in PALETTE.values())
    assert len({PALETTE[c] for c in COLORS}) == len(COLORS), "object colours must have distinct RGB values"


def test_novel_combos_are_train_shapes_with_object_colours() -> None:
    assert 4 <= len(NOVEL_COMBOS) == len(set(NOVEL_COMBOS))
    for color, shape in NOVEL_COMBOS:
        assert color in COLORS and shape in TRAIN_SHAPES
    for background in BACKGROUNDS:
        assert any(color in ALLOWED_COLORS[background] for color, _ in NOVEL_COMBOS)


def test_allowed_colours_contrast_with_background() -> None:
    for background in BACKGROUNDS:
        allowed = ALLOWED_COLORS[background]
        assert background not in allowed
        assert len(allowed) >= 6
        assert all(color_distance(c, background) >= MIN_CONTRAST for c in allowed)


def test_position_tuple_is_normalised_and_cell_round_trips() -> None:
    for i, name in enumerate(POSITIONS):
        obj = ShapeObject("circle", "red", "small", divmod(i, 3))  # type: ignore[arg-type]
        assert obj.position == name and obj.cell == divmod(i, 3)
        assert ShapeObject("circle", "red", "small", name) == obj


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"shape": "blob"}, "invalid shape"),
        ({"color": "mauve"}, "invalid color"),
        ({"size": "medium"}, "invalid size"),
        ({"position": "middle"}, "invalid position"),
        ({"position": (3, 0)}, "invalid position"),
        ({"position": (0,)}, "invalid position"),
        ({"offset": (1.5, 0.0)}, "invalid offset"),
        ({"offset": (float("nan"), 0.0)}, "invalid offset"),
        ({"offset": "x"}, "invalid offset"),
    ],
)
def test_invalid_object_attributes_raise(kwargs: dict, message: str) -> None:
    attrs = {"shape": "circle", "color": "red", "size": "small", "position": "center", **kwargs}
    with pytest.raises(ValueError, match=message):
        ShapeObject(**attrs)


def test_invalid_scenes_raise() -> None:
    red = ShapeObject("circle", "red", "small", "center")
    with pytest.raises(ValueError, match="invalid background"):
        Scene("red", (red,))  # red is not a background colour
    with pytest.raises(ValueError, match="1 to 3 objects"):
        Scene("white", ())
    with pytest.raises(ValueError, match="1 to 3 objects"):
        Scene("white", tuple(red.replace(position=p) for p in POSITIONS[:4]))
    with pytest.raises(ValueError, match="distinct grid cells"):
        Scene("white", (red, red.replace(shape="star")))
    with pytest.raises(ValueError, match="does not contrast"):
        Scene("white", (red.replace(color="white"),))
    with pytest.raises(ValueError, match="does not contrast"):
        Scene("blue", (red.replace(color="purple"),))
    for background in BACKGROUNDS:  # an object colour never equals the background colour
        if background in COLORS:
            with pytest.raises(ValueError):
                Scene(background, (red.replace(color=background),))


def test_edits_return_new_validated_scenes() -> None:
    scene = _scene()
    edited = scene.replace_object(0, color="green", shape="heart")
    assert edited.objects[0] == ShapeObject("heart", "green", "large", "left", (0.5, -0.25))
    assert edited.objects[1] == scene.objects[1] and scene.objects[0].color == "red"
    assert scene.replace(background="black").background == "black"
    assert scene.add_object(ShapeObject("ring", "pink", "small", "center")).objects[-1].shape == "ring"
    assert scene.remove_object(0).objects == (scene.objects[1],)
    with pytest.raises(ValueError):
        scene.replace_object(0, position="top right")  # cell already taken
    with pytest.raises(ValueError):
        scene.replace_object(1, color="yellow")  # same as the background
    with pytest.raises(ValueError):
        scene.remove_object(0).remove_object(0)  # a scene keeps one object
    with pytest.raises(IndexError):
        scene.replace_object(2, color="green")


def test_without_jitter_and_canonical() -> None:
    scene = _scene()
    assert all(o.offset == (0.0, 0.0) for o in scene.without_jitter().objects)
    canonical = scene.canonical()
    assert [o.position for o in canonical.objects] == ["top right", "left"]
    assert set(canonical.objects) == set(scene.objects)


def test_dict_and_json_round_trip() -> None:
    scene = _scene()
    data = json.loads(json.dumps(scene.to_dict()))
    assert Scene.from_dict(data) == scene
    assert Scene.from_json(scene.to_json()) == scene
    data["objects"][0].pop("offset")
    assert Scene.from_dict(data).objects[0].offset == (0.0, 0.0)
    data["objects"][0]["position"] = [1, 0]
    assert Scene.from_dict(data).objects[0].position == "left"


def test_from_dict_rejects_bad_data() -> None:
    data = _scene().to_dict()
    with pytest.raises(ValueError, match="unknown scene field"):
        Scene.from_dict({**data, "extra": 1})
    with pytest.raises(ValueError, match="missing scene field"):
        Scene.from_dict({"objects": data["objects"]})
    with pytest.raises(ValueError, match="missing object field"):
        Scene.from_dict({"background": "white", "objects": [{"shape": "circle"}]})
    with pytest.raises(ValueError, match="invalid color"):
        Scene.from_dict({"background": "white", "objects": [{**data["objects"][0], "color": "teal"}]})
