"""Prompt templates of textual inversion (Gal et al. 2022, Sec. 4 and their data loader): during learning each
image is paired with a random template in which ``{}`` stands for the new token.

The paper's sets describe photos and paintings. A model trained on another domain (the built-in model knows only
Shapes captions) needs captions in its own language: give one caption template per image instead
(``captions=`` of :func:`diffinv.learn_concept`, ``--caption`` on the command line), e.g. ``"a large red {} in the
center on a white background"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from diffinv.errors import DiffinvError

PLACEHOLDER: Final[str] = "{}"

OBJECT_TEMPLATES: Final[tuple[str, ...]] = (
    "a photo of a {}",
    "a rendering of a {}",
    "a cropped photo of the {}",
    "the photo of a {}",
    "a photo of a clean {}",
    "a photo of a dirty {}",
    "a dark photo of the {}",
    "a photo of my {}",
    "a photo of the cool {}",
    "a close-up photo of a {}",
    "a bright photo of the {}",
    "a cropped photo of a {}",
    "a photo of the {}",
    "a good photo of the {}",
    "a photo of one {}",
    "a close-up photo of the {}",
    "a rendition of the {}",
    "a photo of the clean {}",
    "a rendition of a {}",
    "a photo of a nice {}",
    "a good photo of a {}",
    "a photo of the nice {}",
    "a photo of the small {}",
    "a photo of the weird {}",
    "a photo of the large {}",
    "a photo of a cool {}",
    "a photo of a small {}",
)
"""The paper's object templates (its ``imagenet_templates_small``)."""

STYLE_TEMPLATES: Final[tuple[str, ...]] = (
    "a painting in the style of {}",
    "a rendering in the style of {}",
    "a cropped painting in the style of {}",
    "the painting in the style of {}",
    "a clean painting in the style of {}",
    "a dirty painting in the style of {}",
    "a dark painting in the style of {}",
    "a picture in the style of {}",
    "a cool painting in the style of {}",
    "a close-up painting in the style of {}",
    "a bright painting in the style of {}",
    "a cropped painting in the style of {}",
    "a good painting in the style of {}",
    "a close-up painting in the style of {}",
    "a rendition in the style of {}",
    "a nice painting in the style of {}",
    "a small painting in the style of {}",
    "a weird painting in the style of {}",
    "a large painting in the style of {}",
)
"""The paper's style templates (its ``imagenet_style_templates_small``)."""

TEMPLATES: Final = {"object": OBJECT_TEMPLATES, "style": STYLE_TEMPLATES}


def check_captions(captions: Sequence[str], count: int) -> tuple[str, ...]:
    """Per-image caption templates: one for all images or one per image, each holding ``{}`` exactly once."""
    if isinstance(captions, str):
        captions = [captions]
    captions = list(captions)
    if len(captions) == 1:
        captions = captions * count
    if len(captions) != count:
        raise DiffinvError(f"{len(captions)} captions for {count} images; give one caption, or one per image")
    for text in captions:
        if not isinstance(text, str) or text.count(PLACEHOLDER) != 1:
            raise DiffinvError(f"a caption must hold {PLACEHOLDER} exactly once where the new token goes, got {text!r}")
    return tuple(captions)
