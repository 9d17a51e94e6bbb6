"""Shared fixtures: tiny seeded pipelines built in code and a real photo from scikit-image."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

import pytest  # noqa: E402
import skimage.data  # noqa: E402
from PIL import Image  # noqa: E402

from diffinv.testing import tiny_pipeline  # noqa: E402

PROMPT = "a woman in a space suit"


@pytest.fixture(scope="session")
def pipe():
    return tiny_pipeline(seed=0)


@pytest.fixture(scope="session")
def photo() -> Image.Image:
    return Image.fromarray(skimage.data.astronaut())


@pytest.fixture(scope="session")
def photo_path(tmp_path_factory, photo) -> str:
    path = tmp_path_factory.mktemp("photos") / "astronaut.png"
    photo.save(path)
    return str(path)
