"""What every tab shares: the loaded pipeline, the server limits, a private folder per browser session, and the
translation of library errors into messages in the page."""

from __future__ import annotations

import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
from diffusers import StableDiffusionPipeline
from PIL import Image

from diffinv import images
from diffinv.denoiser import time_limit
from diffinv.errors import DiffinvError
from diffinv.ui.limits import ServerLimits

IMAGE_HEIGHT = 256  # display height of images in the page (small models' 64 px images are scaled up)


@dataclass
class UIContext:
    """The app's shared state. Per-user results live only in per-session folders and Gradio session state, so
    browsers never see each other's work."""

    pipe: StableDiffusionPipeline
    limits: ServerLimits = field(default_factory=ServerLimits)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="diffinv-ui-")))
    _counter: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def session_dir(self, request: gr.Request | None) -> Path:
        """This browser session's private folder (created on first use)."""
        session = getattr(request, "session_hash", None) or "anonymous"
        if not session.replace("-", "").replace("_", "").isalnum():
            raise gr.Error("bad session id")
        folder = self.root / session
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def new_path(self, request: gr.Request | None, stem: str, suffix: str) -> Path:
        """A fresh file name in the session's folder (never reused, so earlier downloads stay valid)."""
        with self._lock:
            self._counter += 1
            number = self._counter
        return self.session_dir(request) / f"{stem}-{number:04d}{suffix}"

    def check_image(self, image: Image.Image | None, what: str = "photo") -> Image.Image:
        """The uploaded image as RGB, or a message in the page: none given, or over the pixel limit."""
        if image is None:
            raise gr.Error(f"upload a {what} first")
        if image.width * image.height > self.limits.max_pixels:
            raise gr.Error(
                f"the {what} is {image.width}×{image.height} pixels; this server takes at most "
                f"{self.limits.max_pixels:,} pixels"
            )
        return images.open_image(image)

    def run(self, function: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        """Call the library under the server's time limit; its one-line errors (a timeout included) become a
        message in the page instead of a traceback."""
        try:
            with time_limit(self.limits.timeout_s):
                return function(*args, **kwargs)
        except DiffinvError as exc:
            raise gr.Error(str(exc)) from None

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def result_image(label: str, elem_id: str) -> gr.Image:
    """A read-only image in the page, scaled up to :data:`IMAGE_HEIGHT` (see ``app.CSS``)."""
    return gr.Image(label=label, interactive=False, height=IMAGE_HEIGHT, elem_classes="scaled", elem_id=elem_id)


@dataclass(frozen=True)
class Tab:
    """One tab: its title and the function that lays it out inside ``gr.Tab`` (given the context and the
    cross-tab session state)."""

    title: str
    build: Callable[[UIContext, SharedState], None]


@dataclass
class SharedState:
    """Per-browser state the tabs share: the path of the session's latest inversion file."""

    inversion: gr.State
