"""Procedural shape families of the Shapes world v3 (issue 23): many named shapes from a few parametric families.

Every shape is an :class:`Outline` in the unit frame (bounding box ``[-1, 1]^2``, ``y`` up) made by a *family*
function of continuous parameters (:data:`FAMILIES`), so silhouettes vary continuously within a family and a named
shape is one point of it (:data:`NAMED`): ``pentagon`` is ``polygon(sides=5)``, ``donut`` is a ``ring`` with a
thicker band than ``ring``'s, ``moon`` is a ``crescent`` of one thickness. Unnamed members (any other parameters)
serve personalization as concepts the model has never seen.

Held out (:data:`HELDOUT`): never named in a caption nor drawn in a training scene: the whole ``crescent`` and
``lobes`` families, plus a few members of the others (``hexagon``, ``sparkle``, ``egg``), so personalization can be
scored both on families the model never saw and on unseen members of families it knows.

An outline is the union of :class:`Part` s; a part is the even-odd region of its ``fill`` loops minus the union of
its ``cut`` loops (a ring is a disc cut by a smaller disc, a crescent a disc cut by an offset disc).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType
from typing import Final

import numpy as np

from diffinv.shapes.geometry import inside_polygon, regular_star

CURVE_VERTICES: Final[int] = 160
"""Vertices of a sampled curve (a circle, a heart): smooth at any resolution up to a few hundred pixels."""


@dataclass(frozen=True)
class Part:
    """The even-odd region of the ``fill`` loops minus the union of the ``cut`` loops (each loop ``(N, 2)``)."""

    fill: tuple[np.ndarray, ...]
    cut: tuple[np.ndarray, ...] = ()

    def inside(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        result = np.zeros(np.broadcast(u, v).shape, dtype=bool)
        for loop in self.fill:
            result ^= inside_polygon(u, v, loop)
        for loop in self.cut:
            result &= ~inside_polygon(u, v, loop)
        return result

    def moved(self, offset: np.ndarray, scale: float) -> Part:
        return Part(tuple((p - offset) * scale for p in self.fill), tuple((p - offset) * scale for p in self.cut))


@dataclass(frozen=True)
class Outline:
    """A silhouette: the union of its parts."""

    parts: tuple[Part, ...]

    def inside(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Inside test, vectorised over points of the unit frame."""
        result = np.zeros(np.broadcast(u, v).shape, dtype=bool)
        for part in self.parts:
            result |= part.inside(u, v)
        return result

    def fitted(self) -> Outline:
        """The outline with the bounding box of its fill loops centred on the origin, larger half-extent 1."""
        points = np.concatenate([loop for part in self.parts for loop in part.fill])
        lo, hi = points.min(axis=0), points.max(axis=0)
        return Outline(tuple(part.moved((lo + hi) / 2, 2 / (hi - lo).max()) for part in self.parts))


def _curve(fn: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    t = np.arange(CURVE_VERTICES) * 2 * math.pi / CURVE_VERTICES
    x, y = fn(t)
    return np.stack([x, y], axis=1)


def _ellipse(rx: float = 1.0, ry: float = 1.0, cx: float = 0.0, cy: float = 0.0) -> np.ndarray:
    return _curve(lambda t: (cx + rx * np.cos(t), cy + ry * np.sin(t)))


def _rect(half_w: float, half_h: float, rotation: float = 0.0) -> np.ndarray:
    corners = np.array([[-half_w, -half_h], [half_w, -half_h], [half_w, half_h], [-half_w, half_h]])
    c, s = math.cos(rotation), math.sin(rotation)
    return corners @ np.array([[c, s], [-s, c]])


def _one(*fill: np.ndarray, cut: tuple[np.ndarray, ...] = ()) -> Outline:
    return Outline((Part(tuple(fill), cut),))


# --------------------------------------------------------------------------------------------------------
# Families: functions of continuous parameters → outlines (fitted to the unit box by :func:`outline`)
# --------------------------------------------------------------------------------------------------------


def polygon(sides: int, aspect: float = 1.0, rotation: float = 0.0) -> Outline:
    """A regular polygon with a vertex up (turned by ``rotation`` degrees), its width scaled by ``aspect``."""
    vertices = regular_star(sides, 1.0, math.radians(rotation))[::2]
    return _one(vertices * np.array([aspect, 1.0]))


def star(points: int, inner: float, rotation: float = 0.0) -> Outline:
    """A star with ``points`` tips (one up, turned by ``rotation`` degrees), inner radius ``inner``."""
    return _one(regular_star(points, inner, math.radians(rotation)))


def radial(lobes: int, depth: float, squareness: float = 0.0) -> Outline:
    """A disc whose radius waves ``lobes`` times: ``r(θ) = 1 + depth · w(lobes · θ)``, ``w`` a cosine that
    ``squareness`` > 0 flattens into a square wave (``tanh(k cos) / tanh(k)``: gear teeth)."""

    def wave(phase: np.ndarray) -> np.ndarray:
        return np.cos(phase) if squareness <= 0 else np.tanh(squareness * np.cos(phase)) / math.tanh(squareness)

    def fn(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        r = 1.0 + depth * wave(lobes * (t - math.pi / 2))
        return r * np.cos(t), r * np.sin(t)

    return _one(_curve(fn))


def rounded(aspect: float = 1.0, exponent: float = 2.0, taper: float = 0.0) -> Outline:
    """A superellipse ``|x / aspect|^p + |y|^p = 1`` (``p = exponent``: 2 an ellipse, large a rounded rectangle),
    its width scaled by ``1 - taper · y`` (an egg for ``taper`` > 0)."""

    def fn(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c, s = np.cos(t), np.sin(t)
        x = np.sign(c) * np.abs(c) ** (2 / exponent)
        y = np.sign(s) * np.abs(s) ** (2 / exponent)
        return aspect * x * (1 - taper * y), y

    return _one(_curve(fn))


def ring(inner: float, square: bool = False) -> Outline:
    """A disc (a square with ``square``) with a concentric hole ``inner`` times its size."""
    outer = _rect(1.0, 1.0) if square else _ellipse()
    return _one(outer, cut=(outer * inner,))


def cross(bars: int, width: float, rotation: float = 0.0) -> Outline:
    """``bars`` bars of half-width ``width`` through the centre, evenly turned (1: a bar, 2: a plus sign), the
    first horizontal, all turned by ``rotation`` degrees."""
    parts = tuple(Part((_rect(1.0, width, math.radians(rotation) + i * math.pi / bars),)) for i in range(bars))
    return Outline(parts)


def arrow(head: float, shaft: float) -> Outline:
    """A right-pointing arrow: a shaft of half-height ``shaft`` and a head of half-height 1 and length ``head``."""
    x0 = 1.0 - 2.0 * head
    return _one(np.array([[-1, -shaft], [x0, -shaft], [x0, -1], [1, 0], [x0, 1], [x0, shaft], [-1, shaft]], float))


def chevron(thickness: float, opening: float = 1.0) -> Outline:
    """An upward V of arm thickness ``thickness``, arms ``opening`` wide each."""
    return _one(
        np.array(
            [
                [0, 1],
                [opening, 1 - opening],
                [opening, 1 - opening - thickness],
                [0, 1 - thickness],
                [-opening, 1 - opening - thickness],
                [-opening, 1 - opening],
            ],
            float,
        )  # fmt: skip
    )


def bolt(width: float) -> Outline:
    """A lightning bolt: two parallelograms offset at the middle, ``width`` thick."""
    return _one(
        np.array(
            [[0.1, 1], [-0.5, 0.0], [-0.5 + width + 0.2, 0.0], [-0.1, -1], [0.5, 0.0], [0.5 - width - 0.2, 0.0]], float
        )  # fmt: skip
    )


def heart(cleft: float = 1.0) -> Outline:
    """The classic parametric heart; ``cleft`` scales the depth of the notch between the lobes (0: none)."""

    def fn(t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        x = 16 * np.sin(t) ** 3
        y = 13 * np.cos(t) - cleft * (5 * np.cos(2 * t) + 2 * np.cos(3 * t) + np.cos(4 * t))
        return x, y

    return _one(_curve(fn))


def drop(sharpness: float) -> Outline:
    """A teardrop pointing up: ``x = sin t · sin(t / 2)^sharpness``, ``y = cos t``."""
    return _one(_curve(lambda t: (np.sin(t) * np.abs(np.sin(t / 2)) ** sharpness, np.cos(t))))


def lens(width: float, rotation: float = 0.0) -> Outline:
    """Two circular arcs meeting at two points (a vesica, a leaf when turned), ``width`` its half-width."""
    # the arcs are circles through (0, ±1) and (±width, 0): radius r and centre offset d with d + width = r
    r = (1 + width * width) / (2 * width)
    d = r - width
    half = math.asin(1 / r)
    t = np.linspace(-half, half, CURVE_VERTICES // 2)
    right = np.stack([-d + r * np.cos(t), r * np.sin(t)], axis=1)
    loop = np.concatenate([right, -right])
    c, s = math.cos(math.radians(rotation)), math.sin(math.radians(rotation))
    return _one(loop @ np.array([[c, s], [-s, c]]))


def shield(point: float) -> Outline:
    """A flat top, straight sides down to the middle, then convex curves meeting at a bottom point ``point`` deep."""
    x = np.linspace(1.0, 0.0, CURVE_VERTICES // 2)
    right = np.stack([x, -point * (1.0 - x) ** 0.6], axis=1)  # vertical at the side, a sharp tip at the bottom
    left = right[::-1] * np.array([-1.0, 1.0])
    return _one(np.concatenate([[[-1.0, 1.0], [1.0, 1.0]], right, left[1:]]))


def sector(angle: float) -> Outline:
    """A circular sector of ``angle`` degrees, its opening facing right (a pie with a slice taken out)."""
    half = math.radians(360.0 - angle) / 2
    t = np.linspace(half, 2 * math.pi - half, CURVE_VERTICES)
    return _one(np.concatenate([[[0.0, 0.0]], np.stack([np.cos(t), np.sin(t)], axis=1)]))


def spade(stem: float) -> Outline:
    """An upside-down heart on a stem of half-width ``stem``."""
    body = heart().parts[0].fill[0] * np.array([1.0, -1.0]) / 16 + np.array([0.0, 0.35])
    foot = np.array([[-stem, -0.2], [stem, -0.2], [2 * stem, -1.1], [-2 * stem, -1.1]])
    return Outline((Part((body,)), Part((foot,))))


def house(roof: float) -> Outline:
    """A square with a triangular roof ``roof`` high."""
    return _one(np.array([[-1, -1], [1, -1], [1, 0.2], [0, 0.2 + roof], [-1, 0.2]], float))


def kite(waist: float) -> Outline:
    """A kite: its widest point ``waist`` above the centre."""
    return _one(np.array([[0, 1], [-0.65, waist], [0, -1], [0.65, waist]], float))


def crown(points: int, depth: float) -> Outline:
    """A band with ``points`` spikes ``depth`` deep on top."""
    xs = np.linspace(-1, 1, 2 * points - 1)
    top = np.stack([xs, np.where(np.arange(xs.size) % 2 == 0, 0.6, 0.6 - depth)], axis=1)
    return _one(np.concatenate([[[-1, -0.6], [1, -0.6]], top[::-1]]))


def tree(tiers: int) -> Outline:
    """``tiers`` stacked triangles on a trunk."""
    parts = [Part((np.array([[-0.12, -1], [0.12, -1], [0.12, -0.5], [-0.12, -0.5]]),))]
    height = 1.5 / tiers
    for i in range(tiers):
        base = -0.6 + i * height * 0.6
        half = 0.8 - 0.15 * i
        parts.append(Part((np.array([[-half, base], [half, base], [0, base + height]]),)))
    return Outline(tuple(parts))


def bell(flare: float) -> Outline:
    """A bell: a dome over sides that flare out by ``flare`` at the rim, with a clapper."""
    t = np.linspace(0, math.pi, CURVE_VERTICES // 2)
    dome = np.stack([0.55 * np.cos(t), 0.45 + 0.45 * np.sin(t)], axis=1)  # right to left over the top
    body = np.concatenate([dome, [[-0.55, 0.0], [-0.55 - flare, -0.6], [0.55 + flare, -0.6], [0.55, 0.0]]])
    return Outline((Part((body,)), Part((_ellipse(0.16, 0.16, 0.0, -0.72),))))


def crescent(thickness: float, tilt: float = 0.0) -> Outline:
    """A disc cut by an equal disc shifted ``2 · thickness`` to the upper right (turned by ``tilt`` degrees):
    the moon family, held out."""
    angle = math.radians(35 + tilt)
    cut = _ellipse(0.9, 0.9, 2 * thickness * math.cos(angle), 2 * thickness * math.sin(angle))
    return _one(_ellipse(), cut=(cut,))


def lobes(count: int, spread: float) -> Outline:
    """``count`` discs on an arc over a flat-bottomed base disc row (a cloud), ``spread`` apart: held out."""
    centres = [(spread * (i - (count - 1) / 2), 0.35 * math.cos(math.pi * (i - (count - 1) / 2) / count))
               for i in range(count)]  # fmt: skip
    parts = [Part((_ellipse(0.5, 0.5, x, y),)) for x, y in centres]
    parts.append(Part((_rect(spread * (count - 1) / 2, 0.3) + np.array([0.0, -0.2]),)))
    return Outline(tuple(parts))


FAMILIES: Final = MappingProxyType(
    {
        fn.__name__: fn
        for fn in (
            polygon,
            star,
            radial,
            rounded,
            sector,
            ring,
            cross,
            arrow,
            chevron,
            bolt,
            heart,
            drop,
            lens,
            shield,
            spade,
            house,
            kite,
            crown,
            tree,
            bell,
            crescent,
            lobes,
        )  # fmt: skip
    }
)
"""Every family by name: a function of its parameters returning an (unfitted) :class:`Outline`."""

HELDOUT_FAMILIES: Final[tuple[str, ...]] = ("crescent", "lobes")
"""Families no member of which is ever named in a caption or drawn in a training scene."""


@dataclass(frozen=True)
class ShapeSpec:
    """A shape: a family and its parameters (``((name, value), ...)``, keyword arguments of the family)."""

    family: str
    params: tuple[tuple[str, float | int | bool], ...] = ()

    def __post_init__(self) -> None:
        if self.family not in FAMILIES:
            raise ValueError(f"unknown shape family {self.family!r}; expected one of {', '.join(FAMILIES)}")


def _spec(family: str, **params: float | int | bool) -> ShapeSpec:
    return ShapeSpec(family, tuple(params.items()))


NAMED: Final[Mapping[str, ShapeSpec]] = MappingProxyType(
    {
        "circle": _spec("rounded"),
        "oval": _spec("rounded", aspect=0.6),
        "pill": _spec("rounded", aspect=0.45, exponent=5.0),
        "egg": _spec("rounded", aspect=0.78, taper=0.22),
        "pie": _spec("sector", angle=290.0),
        "triangle": _spec("polygon", sides=3),
        "square": _spec("polygon", sides=4, rotation=45.0),
        "diamond": _spec("polygon", sides=4, aspect=0.7),
        "pentagon": _spec("polygon", sides=5),
        "hexagon": _spec("polygon", sides=6, rotation=30.0),
        "star": _spec("star", points=5, inner=0.48),
        "sparkle": _spec("star", points=4, inner=0.3),
        "burst": _spec("star", points=10, inner=0.68),
        "flower": _spec("radial", lobes=5, depth=0.35),
        "clover": _spec("radial", lobes=3, depth=0.55),
        "gear": _spec("radial", lobes=8, depth=0.16, squareness=4.0),
        "ring": _spec("ring", inner=0.62),
        "donut": _spec("ring", inner=0.4),
        "frame": _spec("ring", inner=0.6, square=True),
        "bar": _spec("cross", bars=1, width=0.38),
        "cross": _spec("cross", bars=2, width=0.34),
        "x": _spec("cross", bars=2, width=0.3, rotation=45.0),
        "arrow": _spec("arrow", head=0.45, shaft=0.35),
        "chevron": _spec("chevron", thickness=0.6),
        "bolt": _spec("bolt", width=0.15),
        "heart": _spec("heart"),
        "drop": _spec("drop", sharpness=1.5),
        "leaf": _spec("lens", width=0.45, rotation=45.0),
        "shield": _spec("shield", point=1.2),
        "spade": _spec("spade", stem=0.12),
        "house": _spec("house", roof=0.8),
        "kite": _spec("kite", waist=0.35),
        "crown": _spec("crown", points=3, depth=0.7),
        "tree": _spec("tree", tiers=3),
        "bell": _spec("bell", flare=0.3),
        "moon": _spec("crescent", thickness=0.3),
        "cloud": _spec("lobes", count=3, spread=0.7),
    }
)
"""Every named shape of world v3 (held-out ones included), each one member of a family."""

HELDOUT: Final[tuple[str, ...]] = tuple(
    name for name, spec in NAMED.items() if spec.family in HELDOUT_FAMILIES or name in ("hexagon", "sparkle", "egg")
)
"""Named shapes never named in a caption nor drawn in a training scene (for personalization)."""

TRAIN: Final[tuple[str, ...]] = tuple(name for name in NAMED if name not in HELDOUT)
"""Named shapes of training scenes and captions."""


@cache
def outline(spec: ShapeSpec) -> Outline:
    """The fitted outline of ``spec`` (cached)."""
    try:
        return FAMILIES[spec.family](**dict(spec.params)).fitted()
    except TypeError as exc:
        raise ValueError(f"bad parameters for the {spec.family!r} family: {exc}") from None


def named_outline(name: str) -> Outline:
    """The fitted outline of the named shape ``name``."""
    if name not in NAMED:
        raise ValueError(f"unknown shape {name!r}; expected one of {', '.join(NAMED)}")
    return outline(NAMED[name])
