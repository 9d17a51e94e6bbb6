"""Scene model of the Shapes world: immutable, validated, editable and JSON-serialisable."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from diffinv.shapes.vocab import (
    ALLOWED_COLORS,
    BACKGROUNDS,
    COLORS,
    GRID,
    MAX_OBJECTS,
    MIN_OBJECTS,
    POSITION_CELLS,
    POSITIONS,
    SHAPES,
    SIZES,
)

Position = str | tuple[int, int]


def _check_choice(kind: str, value: object, options: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"invalid {kind} {value!r}; expected one of {', '.join(options)}")


def _normalize_position(position: Position) -> str:
    """Return the position name of ``position`` given as a name or a ``(row, col)`` cell."""
    if isinstance(position, str):
        _check_choice("position", position, POSITIONS)
        return position
    if (
        isinstance(position, tuple | list)
        and len(position) == 2
        and all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v < GRID for v in position)
    ):
        row, col = position
        return POSITIONS[row * GRID + col]
    raise ValueError(
        f"invalid position {position!r}; expected a (row, col) cell with 0 <= row, col < {GRID} "
        f"or one of {', '.join(POSITIONS)}"
    )


def _normalize_offset(offset: Any) -> tuple[float, float]:
    """Return ``offset`` as a pair of floats in ``[-1, 1]``."""
    try:
        dx, dy = (float(v) for v in offset)
    except (TypeError, ValueError):
        raise ValueError(f"invalid offset {offset!r}; expected a pair of floats") from None
    if not all(math.isfinite(v) and -1.0 <= v <= 1.0 for v in (dx, dy)):
        raise ValueError(f"invalid offset {offset!r}; both components must lie in [-1, 1]")
    return dx, dy


@dataclass(frozen=True)
class ShapeObject:
    """One object of a scene.

    Attributes:
        shape: Shape name, one of :data:`~diffinv.shapes.vocab.SHAPES`.
        color: Colour name, one of :data:`~diffinv.shapes.vocab.COLORS`.
        size: Size name, one of :data:`~diffinv.shapes.vocab.SIZES`.
        position: Grid cell name, one of :data:`~diffinv.shapes.vocab.POSITIONS`. A ``(row, col)`` tuple
            is also accepted and normalised to its name.
        offset: Jitter of the object centre inside its cell, ``(dx, dy)`` each in ``[-1, 1]``, in units of
            the free margin between the object's bounding box and its cell (``dx = 1`` puts the object's
            right edge on the cell's right edge; ``dy = 1`` is downwards). Part of the scene data, so
            re-rendering is exact at any resolution. ``(0, 0)`` centres the object.
    """

    shape: str
    color: str
    size: str
    position: str
    offset: tuple[float, float] = field(default=(0.0, 0.0))

    def __post_init__(self) -> None:
        _check_choice("shape", self.shape, SHAPES)
        _check_choice("color", self.color, COLORS)
        _check_choice("size", self.size, SIZES)
        object.__setattr__(self, "position", _normalize_position(self.position))
        object.__setattr__(self, "offset", _normalize_offset(self.offset))

    @property
    def cell(self) -> tuple[int, int]:
        """Grid cell ``(row, col)`` of the object."""
        return POSITION_CELLS[self.position]

    def replace(self, **changes: Any) -> ShapeObject:
        """Return a copy with some attributes changed (validated), e.g. ``obj.replace(color="green")``."""
        return dataclasses.replace(self, **changes)

    def without_jitter(self) -> ShapeObject:
        """Return a copy centred in its cell (``offset == (0, 0)``)."""
        return self.replace(offset=(0.0, 0.0))

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dictionary of the object."""
        return {
            "shape": self.shape,
            "color": self.color,
            "size": self.size,
            "position": self.position,
            "offset": list(self.offset),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ShapeObject:
        """Inverse of :meth:`to_dict` (``offset`` is optional)."""
        unknown = set(data) - {"shape", "color", "size", "position", "offset"}
        if unknown:
            raise ValueError(f"unknown object field(s): {', '.join(sorted(unknown))}")
        try:
            return cls(
                shape=data["shape"],
                color=data["color"],
                size=data["size"],
                position=_normalize_position(_position_from_json(data["position"])),
                offset=_normalize_offset(data.get("offset", (0.0, 0.0))),
            )
        except KeyError as e:
            raise ValueError(f"missing object field {e.args[0]!r}") from None


def _position_from_json(value: Any) -> Any:
    """JSON has no tuples: a ``[row, col]`` list stands for a cell."""
    return tuple(value) if isinstance(value, list) else value


@dataclass(frozen=True)
class Scene:
    """A scene: a plain background and 1 to 3 objects in distinct grid cells, drawn in order.

    Every object colour must contrast with the background (see
    :data:`~diffinv.shapes.vocab.ALLOWED_COLORS`); in particular it never equals the background colour.

    Scenes are immutable; edits return new scenes::

        scene.replace_object(0, color="green", shape="star")
        scene.replace(background="black")
    """

    background: str
    objects: tuple[ShapeObject, ...]

    def __post_init__(self) -> None:
        _check_choice("background", self.background, BACKGROUNDS)
        objects = tuple(self.objects)
        object.__setattr__(self, "objects", objects)
        if not MIN_OBJECTS <= len(objects) <= MAX_OBJECTS:
            raise ValueError(f"a scene has {MIN_OBJECTS} to {MAX_OBJECTS} objects, got {len(objects)}")
        for i, obj in enumerate(objects):
            if not isinstance(obj, ShapeObject):
                raise ValueError(f"object {i} is a {type(obj).__name__}, expected ShapeObject")
            if obj.color not in ALLOWED_COLORS[self.background]:
                raise ValueError(
                    f"object {i} colour {obj.color!r} does not contrast with the {self.background!r} "
                    f"background; allowed: {', '.join(ALLOWED_COLORS[self.background])}"
                )
        positions = [obj.position for obj in objects]
        if len(set(positions)) != len(positions):
            raise ValueError(f"objects must occupy distinct grid cells, got positions {positions}")

    def replace(self, **changes: Any) -> Scene:
        """Return a copy with scene attributes changed (validated), e.g. ``replace(background="gray")``."""
        return dataclasses.replace(self, **changes)

    def replace_object(self, index: int, **changes: Any) -> Scene:
        """Return a copy where object ``index`` has some attributes changed (validated)."""
        self._check_index(index)
        objects = list(self.objects)
        objects[index] = objects[index].replace(**changes)
        return self.replace(objects=tuple(objects))

    def add_object(self, obj: ShapeObject) -> Scene:
        """Return a copy with ``obj`` drawn on top of the existing objects."""
        return self.replace(objects=(*self.objects, obj))

    def remove_object(self, index: int) -> Scene:
        """Return a copy without object ``index`` (a scene keeps at least one object)."""
        self._check_index(index)
        return self.replace(objects=self.objects[:index] + self.objects[index + 1 :])

    def without_jitter(self) -> Scene:
        """Return a copy where every object is centred in its cell."""
        return self.replace(objects=tuple(obj.without_jitter() for obj in self.objects))

    def canonical(self) -> Scene:
        """Return a copy with the objects sorted in row-major cell order.

        Every object's bounding box lies inside its own cell, so the drawing order only matters for the
        few anti-aliased pixels straddling a border that two objects both touch; a scene and its canonical
        form describe the same picture.
        """
        return self.replace(objects=tuple(sorted(self.objects, key=lambda o: o.cell)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dictionary of the scene."""
        return {"background": self.background, "objects": [obj.to_dict() for obj in self.objects]}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scene:
        """Inverse of :meth:`to_dict`."""
        unknown = set(data) - {"background", "objects"}
        if unknown:
            raise ValueError(f"unknown scene field(s): {', '.join(sorted(unknown))}")
        try:
            return cls(
                background=data["background"],
                objects=tuple(ShapeObject.from_dict(o) for o in data["objects"]),
            )
        except KeyError as e:
            raise ValueError(f"missing scene field {e.args[0]!r}") from None

    def to_json(self) -> str:
        """Compact JSON string of the scene."""
        return json.dumps(self.to_dict(), separators=(",", ":"))

    @classmethod
    def from_json(cls, text: str) -> Scene:
        """Inverse of :meth:`to_json`."""
        return cls.from_dict(json.loads(text))

    def _check_index(self, index: int) -> None:
        if not -len(self.objects) <= index < len(self.objects):
            raise IndexError(f"object index {index} out of range for {len(self.objects)} object(s)")
