"""Vocabulary and constants of the Shapes world.

Everything that defines the world -- shape names, colour names and their exact RGB values, sizes, grid
positions, the held-out shape, the novel colour x shape combinations, the caption synonyms and the
geometric parameters of the renderer -- lives in this one module so that the rest of the package holds
no scattered magic numbers.

The world is a 3 x 3 grid of cells on a plain background. Each object is a shape of one colour and one
size centred in its own cell (plus an optional jitter stored in the scene data).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

RGB = tuple[int, int, int]

# --------------------------------------------------------------------------------------------------------
# Shapes
# --------------------------------------------------------------------------------------------------------

SHAPES: Final[tuple[str, ...]] = (
    "circle",
    "square",
    "triangle",
    "star",
    "heart",
    "cross",
    "ring",
    "diamond",
    "pentagon",
    "moon",
)
"""Every shape of the world, including the held-out one(s).

Every word of the caption vocabulary is a single CLIP token (hence e.g. "pentagon" rather than "hexagon",
and "turquoise" rather than "cyan"), which keeps captions of 3 objects within 30 tokens."""

HELDOUT_SHAPES: Final[tuple[str, ...]] = ("moon",)
"""Shapes that never appear in any training scene or caption (targets for textual inversion)."""

TRAIN_SHAPES: Final[tuple[str, ...]] = tuple(s for s in SHAPES if s not in HELDOUT_SHAPES)
"""Shapes that may appear in training scenes."""

# --------------------------------------------------------------------------------------------------------
# Colours
# --------------------------------------------------------------------------------------------------------

PALETTE: Final = MappingProxyType(
    {
        "red": (220, 40, 40),
        "orange": (245, 140, 30),
        "yellow": (250, 215, 40),
        "green": (40, 170, 70),
        "turquoise": (40, 200, 210),
        "blue": (40, 80, 220),
        "purple": (140, 60, 190),
        "pink": (245, 140, 190),
        "white": (245, 245, 245),
        "black": (20, 20, 20),
        "gray": (128, 128, 128),
    }
)
"""Exact RGB value of every colour name (object and background colours share one palette)."""

COLORS: Final[tuple[str, ...]] = (
    "red",
    "orange",
    "yellow",
    "green",
    "turquoise",
    "blue",
    "purple",
    "pink",
    "white",
    "black",
)
"""Colours an object may have."""

BACKGROUNDS: Final[tuple[str, ...]] = ("white", "black", "gray", "yellow", "blue", "green", "pink")
"""Colours a background may have."""

MIN_CONTRAST: Final[float] = 110.0
"""Minimum Euclidean RGB distance between an object colour and its background colour."""


def color_distance(a: str, b: str) -> float:
    """Euclidean distance between the RGB values of two colour names."""
    return math.dist(PALETTE[a], PALETTE[b])


ALLOWED_COLORS: Final = MappingProxyType(
    {bg: tuple(c for c in COLORS if color_distance(c, bg) >= MIN_CONTRAST) for bg in BACKGROUNDS}
)
"""For every background, the object colours that contrast with it (never the background colour itself)."""

# --------------------------------------------------------------------------------------------------------
# Novel colour x shape combinations (never seen in training)
# --------------------------------------------------------------------------------------------------------

NOVEL_COMBOS: Final[tuple[tuple[str, str], ...]] = (
    ("green", "star"),
    ("purple", "heart"),
    ("blue", "triangle"),
    ("orange", "square"),
    ("pink", "cross"),
    ("turquoise", "ring"),
)
"""``(color, shape)`` pairs that never appear in training scenes: targets of compositional edits."""

# --------------------------------------------------------------------------------------------------------
# Sizes and positions
# --------------------------------------------------------------------------------------------------------

SIZES: Final[tuple[str, ...]] = ("small", "large")
"""Object sizes."""

SIZE_FRACTION: Final = MappingProxyType({"small": 0.17, "large": 0.30})
"""Bounding-box width of an object of each size, as a fraction of the image width (a cell is 1/3)."""

GRID: Final[int] = 3
"""The image is a ``GRID x GRID`` grid of cells."""

POSITIONS: Final[tuple[str, ...]] = (
    "top left",
    "top",
    "top right",
    "left",
    "center",
    "right",
    "bottom left",
    "bottom",
    "bottom right",
)
"""Names of the grid cells in row-major order (``POSITIONS[row * GRID + col]``)."""

POSITION_CELLS: Final = MappingProxyType({name: divmod(i, GRID) for i, name in enumerate(POSITIONS)})
"""Grid cell ``(row, col)`` of every position name."""

MIN_OBJECTS: Final[int] = 1
MAX_OBJECTS: Final[int] = 3

# --------------------------------------------------------------------------------------------------------
# Caption vocabulary
# --------------------------------------------------------------------------------------------------------

SIZE_WORDS: Final = MappingProxyType(
    {
        "small": ("small", "little", "tiny"),
        "large": ("large", "big"),
    }
)
"""Synonyms used in captions for every size (the first one is canonical)."""

POSITION_PHRASES: Final = MappingProxyType(
    {
        "top left": ("at the top left", "in the upper left", "in the top left"),
        "top": ("at the top", "at the top center", "in the top middle"),
        "top right": ("at the top right", "in the upper right", "in the top right"),
        "left": ("on the left", "at the left", "on the left side"),
        "center": ("in the center", "in the middle", "at the center"),
        "right": ("on the right", "at the right", "on the right side"),
        "bottom left": ("at the bottom left", "in the lower left", "in the bottom left"),
        "bottom": ("at the bottom", "at the bottom center", "in the bottom middle"),
        "bottom right": ("at the bottom right", "in the lower right", "in the bottom right"),
    }
)
"""Synonymous phrases used in captions for every position (the first one is canonical)."""

MAX_CAPTION_TOKENS: Final[int] = 30
"""Upper bound on the CLIP token count of a caption (words plus commas), start/end tokens excluded."""

TEST_CONTENT_BUCKETS: Final[int] = 8
"""Scene contents are hashed into this many buckets; bucket 0 is reserved for the test split, so train and
test scenes never coincide (see :mod:`diffinv.shapes.splits`)."""

# --------------------------------------------------------------------------------------------------------
# Stroke paintings
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StrokeStyle:
    """Parameters of the crude stroke paintings (SDEdit-style guides) of :mod:`diffinv.shapes.strokes`."""

    downscale: int = 3
    """The painting is decided at ``size // downscale`` pixels, then upsampled with nearest neighbours."""
    min_resolution: int = 8
    """Lower bound on the low resolution."""
    color_jitter: int = 16
    """Maximum per-channel deviation of each painted colour from its exact RGB value."""
    offset_jitter: float = 0.35
    """Standard deviation of the extra jitter added to every object offset (in offset units)."""
    scale_jitter: float = 0.15
    """Maximum relative change of every object's extent."""
    label_noise: float = 0.15
    """Standard deviation of the noise added to the per-pixel region scores (ragged region borders)."""
    blur: float = 0.35
    """Gaussian blur (standard deviation) of the upsampled region maps, in low-resolution pixels."""
    blur_truncate: float = 3.0
    """The blur kernel extends over this many standard deviations."""


STROKE_STYLE: Final[StrokeStyle] = StrokeStyle()

# --------------------------------------------------------------------------------------------------------
# Geometry of the renderer
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Geometry:
    """Geometric parameters of the shapes, in a unit frame where the bounding box is ``[-1, 1]^2``."""

    supersample: int = 4
    """Sub-samples per pixel along each axis used for anti-aliased coverage."""
    mask_threshold: float = 0.5
    """Coverage at or above which a pixel belongs to an object's mask."""
    square_half_side: float = 0.9
    """Half side of the square (slightly smaller than the box so it does not look bigger than a circle)."""
    star_points: int = 5
    star_inner_ratio: float = 0.48
    """Inner / outer radius of the star (fat enough to stay recognisable at ~10 px)."""
    cross_half_width: float = 0.34
    """Half width of the arms of the cross (a plus sign)."""
    ring_inner_radius: float = 0.55
    diamond_half_width: float = 0.75
    """Half width of the diamond (its half height is 1)."""
    moon_cut_offset: tuple[float, float] = (0.5, 0.3)
    """Centre of the disc cut out of the unit disc to make the crescent moon."""
    moon_cut_radius: float = 0.8
    heart_scale: float = 1.14
    """Scale from the unit box to the frame of the implicit heart curve ``(x²+y²-1)³ = x²y³``."""
    heart_shift: float = 0.118
    """Vertical shift centring the heart curve in its box."""


GEOMETRY: Final[Geometry] = Geometry()
