"""Scene model of the Shapes world: immutable, validated, editable and JSON-serialisable."""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from diffinv.shapes.vocab import COLORS, GRID, POSITION_CELLS, POSITIONS, SIZES
from diffinv.shapes.world import DEFAULT_WORLD, FILLS, WORLDS, get_world

ALL_SHAPES: tuple[str, ...] = tuple(dict.fromkeys(s for world in WORLDS.values() for s in world.shapes))
"""The shapes of every world (a scene checks its objects against its own world's)."""

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
        shape: Shape name, one of the scene's world's shapes (:data:`ALL_SHAPES` for an object alone).
        color: Colour name, one of :data:`~diffinv.shapes.vocab.COLORS`.
        size: Size name, one of :data:`~diffinv.shapes.vocab.SIZES`.
        position: Grid cell name, one of :data:`~diffinv.shapes.vocab.POSITIONS`. A ``(row, col)`` tuple
            is also accepted and normalised to its name.
        offset: Jitter of the object centre inside its cell, ``(dx, dy)`` each in ``[-1, 1]``, in units of
            the free margin between the object's bounding box and its cell (``dx = 1`` puts the object's
            right edge on the cell's right edge; ``dy = 1`` is downwards). Part of the scene data, so
            re-rendering is exact at any resolution. ``(0, 0)`` centres the object. In a world with
            ``jitter`` (v3) an offset of 1 moves the centre that many cell widths instead, past the cell's edge.
        fill: ``solid`` (the default, and v2's only fill), ``striped`` or ``outlined`` (see
            :data:`~diffinv.shapes.world.FILLS`).
    """

    shape: str
    color: str
    size: str
    position: str
    offset: tuple[float, float] = field(default=(0.0, 0.0))
    fill: str = "solid"

    def __post_init__(self) -> None:
        _check_choice("shape", self.shape, ALL_SHAPES)
        _check_choice("fill", self.fill, FILLS)
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
        """JSON-compatible dictionary of the object (``fill`` only when not solid: v2 records are unchanged)."""
        data: dict[str, Any] = {
            "shape": self.shape,
            "color": self.color,
            "size": self.size,
            "position": self.position,
            "offset": list(self.offset),
        }
        if self.fill != "solid":
            data["fill"] = self.fill
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ShapeObject:
        """Inverse of :meth:`to_dict` (``offset`` and ``fill`` are optional)."""
        unknown = set(data) - {"shape", "color", "size", "position", "offset", "fill"}
        if unknown:
            raise ValueError(f"unknown object field(s): {', '.join(sorted(unknown))}")
        try:
            return cls(
                shape=data["shape"],
                color=data["color"],
                size=data["size"],
                position=_normalize_position(_position_from_json(data["position"])),
                offset=_normalize_offset(data.get("offset", (0.0, 0.0))),
                fill=data.get("fill", "solid"),
            )
        except KeyError as e:
            raise ValueError(f"missing object field {e.args[0]!r}") from None


def _position_from_json(value: Any) -> Any:
    """JSON has no tuples: a ``[row, col]`` list stands for a cell."""
    return tuple(value) if isinstance(value, list) else value


@dataclass(frozen=True)
class Scene:
    """A scene of the Shapes world ``world`` (:mod:`diffinv.shapes.world`): a plain background and objects in
    distinct grid cells (1 to 3 in v2, 1 to 4 in v3), drawn in order (later ones on top where they overlap).

    Every object colour must contrast with the background (see
    :data:`~diffinv.shapes.vocab.ALLOWED_COLORS`); in particular it never equals the background colour. Shapes and
    fills must be the world's.

    Scenes are immutable; edits return new scenes::

        scene.replace_object(0, color="green", shape="star")
        scene.replace(background="black")
    """

    background: str
    objects: tuple[ShapeObject, ...]
    world: str = DEFAULT_WORLD

    def __post_init__(self) -> None:
        world = get_world(self.world)
        _check_choice("background", self.background, world.backgrounds)
        objects = tuple(self.objects)
        object.__setattr__(self, "objects", objects)
        if not world.min_objects <= len(objects) <= world.max_objects:
            raise ValueError(
                f"a scene of world {world.name} has {world.min_objects} to {world.max_objects} objects, "
                f"got {len(objects)}"
            )
        allowed = world.allowed_colors[self.background]
        for i, obj in enumerate(objects):
            if not isinstance(obj, ShapeObject):
                raise ValueError(f"object {i} is a {type(obj).__name__}, expected ShapeObject")
            if obj.shape not in world.shapes:
                raise ValueError(f"object {i}: {obj.shape!r} is not a shape of world {world.name}")
            if obj.fill not in world.fills:
                raise ValueError(
                    f"object {i}: fill {obj.fill!r} is not one of world {world.name}'s ({', '.join(world.fills)})"
                )
            if obj.fill != "solid" and obj.size not in world.fill_sizes:
                sizes = ", ".join(world.fill_sizes)
                raise ValueError(f"object {i}: in world {world.name} only {sizes} objects have fills, not {obj.size}")
            if obj.color not in allowed:
                raise ValueError(
                    f"object {i} colour {obj.color!r} does not contrast with the {self.background!r} "
                    f"background; allowed: {', '.join(allowed)}"
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

        In v2 every object's bounding box lies inside its own cell, so the drawing order only matters for the
        few anti-aliased pixels straddling a border that two objects both touch; a scene and its canonical
        form describe the same picture. In a world whose objects overlap (v3) they describe the same content,
        not always the same picture.
        """
        return self.replace(objects=tuple(sorted(self.objects, key=lambda o: o.cell)))

    def to_dict(self) -> dict[str, Any]:
        """JSON-compatible dictionary of the scene (``world`` only when not v2: v2 records are unchanged)."""
        data: dict[str, Any] = {"background": self.background, "objects": [obj.to_dict() for obj in self.objects]}
        if self.world != DEFAULT_WORLD:
            data["world"] = self.world
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Scene:
        """Inverse of :meth:`to_dict`."""
        unknown = set(data) - {"background", "objects", "world"}
        if unknown:
            raise ValueError(f"unknown scene field(s): {', '.join(sorted(unknown))}")
        try:
            return cls(
                background=data["background"],
                objects=tuple(ShapeObject.from_dict(o) for o in data["objects"]),
                world=data.get("world", DEFAULT_WORLD),
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
