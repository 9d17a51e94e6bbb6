"""Versions of the Shapes world: what a scene may hold and how it is drawn.

A :class:`~diffinv.shapes.scene.Scene` names its world (``scene.world``, ``"v2"`` unless given). Both worlds share
the 3 x 3 grid of named positions, the palette, the backgrounds and the caption grammar; they differ in:

* **v2** (the built-in model v2's world, :mod:`diffinv.shapes.vocab`): ten shapes (``moon`` held out), 1 to 3
  objects, each inside its own cell (no overlaps), solid fills only.
* **v3** (issue 23): the 37 named shapes of :mod:`diffinv.shapes.families` (the ``crescent`` and ``lobes`` families
  and a few members of the others held out), 1 to 4 objects, larger objects whose jitter lets them overlap their
  neighbours (drawn in scene order, later on top), and, for large objects, a fill: solid, striped or outlined (small
  objects are too few pixels at 64 px for fills to be told apart; measured in docs/mini.md).

Everything a world changes is a field here, so code that samples, renders, captions or reads scenes asks the scene's
world instead of importing constants.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from types import MappingProxyType
from typing import Final

from diffinv.shapes import families
from diffinv.shapes.v2_outlines import INSIDE, InsideFn
from diffinv.shapes.vocab import (
    ALLOWED_COLORS,
    BACKGROUNDS,
    COLORS,
    GRID,
    HELDOUT_SHAPES,
    MAX_CAPTION_TOKENS,
    MAX_OBJECTS,
    MIN_OBJECTS,
    NOVEL_COMBOS,
    SHAPES,
    SIZE_FRACTION,
    SIZES,
)

FILLS: Final[tuple[str, ...]] = ("solid", "striped", "outlined")
"""Every fill of any world; ``solid`` is the default and the only one of v2."""

FILL_WORDS: Final = MappingProxyType({"solid": (), "striped": ("striped",), "outlined": ("hollow",)})
"""The caption word of each fill (single CLIP tokens); a solid object's fill goes unsaid."""


@dataclass(frozen=True)
class FillStyle:
    """How the non-solid fills are drawn, in fractions of the image width (so a scene looks the same at any size)."""

    stroke: float = 0.035
    """Width of the outline of ``outlined`` objects, and of the rim that keeps a ``striped`` object's silhouette."""
    stripe_period: float = 0.09
    """Period of the diagonal stripes of ``striped`` objects (half painted, half showing what lies below)."""


@dataclass(frozen=True)
class World:
    """The vocabulary and layout rules of one version of the Shapes world."""

    name: str
    shapes: tuple[str, ...]
    """Every shape, held-out ones included."""
    heldout_shapes: tuple[str, ...]
    """Shapes never drawn in a training scene nor named in a caption (personalization targets)."""
    novel_combos: tuple[tuple[str, str], ...]
    """``(colour, shape)`` pairs never drawn in training scenes (compositional edit targets)."""
    max_objects: int
    size_fraction: Mapping[str, float]
    """Bounding-box width of an object of each size, as a fraction of the image width (a cell is ``1 / 3``)."""
    jitter: float
    """How far an offset of 1 moves an object from its cell's centre, in cell widths; ``0`` keeps every object
    inside its cell (v2: the offset spans the free margin between the object's box and its cell)."""
    fills: tuple[str, ...] = ("solid",)
    fill_probs: tuple[float, ...] = (1.0,)
    """Relative probability of each fill of an object of a ``fill_sizes`` size in sampled scenes."""
    fill_sizes: tuple[str, ...] = SIZES
    """Sizes whose objects may have a fill other than solid (the others are solid)."""
    fill_style: FillStyle = field(default_factory=FillStyle)
    max_caption_tokens: int = MAX_CAPTION_TOKENS
    """Upper bound on the CLIP token count of a caption, start/end tokens excluded (the built-in model's text
    encoder takes two more positions)."""
    colors: tuple[str, ...] = COLORS
    backgrounds: tuple[str, ...] = BACKGROUNDS
    sizes: tuple[str, ...] = SIZES
    min_objects: int = MIN_OBJECTS
    allowed_colors: Mapping[str, tuple[str, ...]] = field(default_factory=lambda: ALLOWED_COLORS)
    """For every background, the object colours that contrast with it."""

    @cached_property
    def train_shapes(self) -> tuple[str, ...]:
        """Shapes that may appear in training scenes."""
        return tuple(s for s in self.shapes if s not in self.heldout_shapes)

    @property
    def overlaps(self) -> bool:
        """Whether objects of neighbouring cells may overlap (the drawing order then matters)."""
        return self.jitter > 0 or max(self.size_fraction.values()) > 1 / GRID

    def inside(self, shape: str) -> InsideFn:
        """The inside test of ``shape`` in the unit frame (bounding box ``[-1, 1]^2``, ``y`` up)."""
        if shape not in self.shapes:
            raise ValueError(f"invalid shape {shape!r} for world {self.name}; expected one of {', '.join(self.shapes)}")
        return INSIDE[shape] if self.name == "v2" else families.named_outline(shape).inside


V2: Final[World] = World(
    name="v2",
    shapes=SHAPES,
    heldout_shapes=HELDOUT_SHAPES,
    novel_combos=NOVEL_COMBOS,
    max_objects=MAX_OBJECTS,
    size_fraction=SIZE_FRACTION,
    jitter=0.0,
)

V3: Final[World] = World(
    name="v3",
    shapes=tuple(families.NAMED),
    heldout_shapes=families.HELDOUT,
    novel_combos=(*NOVEL_COMBOS, ("yellow", "arrow"), ("red", "tree"), ("black", "flower"), ("white", "bell")),
    max_objects=4,
    size_fraction=MappingProxyType({"small": 0.2, "large": 0.38}),
    jitter=0.22,
    fills=FILLS,
    fill_probs=(0.5, 0.25, 0.25),
    fill_sizes=("large",),
    max_caption_tokens=62,
)

WORLDS: Final = MappingProxyType({world.name: world for world in (V2, V3)})
"""Every world by name."""

DEFAULT_WORLD: Final[str] = "v2"
"""The world of a scene that names none (every scene written before v3)."""


def caption_words(world: World) -> str:
    """The words a model trained on ``world`` knows, as one paragraph for people writing its captions."""
    from diffinv.shapes.vocab import POSITIONS

    parts = {
        "shapes": world.train_shapes,
        "colours": world.colors,
        "sizes": world.sizes,
        "positions": POSITIONS,
        "backgrounds": world.backgrounds,
    }
    text = "; ".join(f"{kind}: {', '.join(words)}" for kind, words in parts.items())
    return f"The built-in model knows these words (Shapes world {world.name}) — {text}."


def get_world(name: str) -> World:
    """The world called ``name`` (ValueError listing the choices otherwise)."""
    if name not in WORLDS:
        raise ValueError(f"unknown Shapes world {name!r}; expected one of {', '.join(WORLDS)}")
    return WORLDS[name]
