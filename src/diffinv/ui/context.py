"""What every tab shares: the loaded pipeline, the server limits, a private folder per browser session, and the
translation of library errors into messages in the page."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import tempfile
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gradio as gr
import torch
from diffusers import StableDiffusionPipeline
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from diffinv import images
from diffinv.config import MAX_SEED
from diffinv.denoiser import time_limit
from diffinv.errors import DiffinvError
from diffinv.personalization import loaded
from diffinv.ui.limits import ServerLimits

MAX_HISTORY = 100  # edits a browser's history keeps (the newest)
RESULT_BUTTONS = ["download", "fullscreen"]  # no share button: sharing needs Hugging Face Spaces
IMAGE_HEIGHT = 256  # display height of images in the page (small models' 64 px images are scaled up)


class PipeLock:
    """Calls that only read the shared pipeline run side by side; a call that changes it for its duration (loading a
    session's concepts, learning one) runs alone."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._readers = 0
        self._writing = False

    @contextlib.contextmanager
    def shared(self) -> Iterator[None]:
        with self._condition:
            self._condition.wait_for(lambda: not self._writing)
            self._readers += 1
        try:
            yield
        finally:
            with self._condition:
                self._readers -= 1
                self._condition.notify_all()

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        with self._condition:
            self._condition.wait_for(lambda: not self._writing and self._readers == 0)
            self._writing = True
        try:
            yield
        finally:
            with self._condition:
                self._writing = False
                self._condition.notify_all()


@dataclass
class UIContext:
    """The app's shared state. Per-user results live only in per-session folders and Gradio session state, so
    browsers never see each other's work."""

    pipe: StableDiffusionPipeline
    limits: ServerLimits = field(default_factory=ServerLimits)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="diffinv-ui-")))
    caption_help: str = ""
    """Shown beside the caption fields: the words the model knows (the built-in model's vocabulary), if known."""
    _counter: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _cancels: dict[str, threading.Event] = field(default_factory=dict)
    _history: dict[str, dict[str, Any]] = field(default_factory=dict)
    _concepts: dict[str, list[Any]] = field(default_factory=dict)
    _pipe_lock: PipeLock = field(default_factory=PipeLock)

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

    def read_upload(self, path: str | None, what: str = "photo") -> Image.Image:
        """An uploaded file (Gradio's temporary path) as an RGB image, or one line in the page that names no
        server path: nothing uploaded, not a readable image (a text file renamed .png, a truncated PNG), or over
        the pixel limit."""
        if not path:
            raise gr.Error(f"upload a {what} first")
        try:
            image = images.open_image(path)
        except DiffinvError as exc:
            message = str(exc).replace(str(path), f"the uploaded {what}")
            raise gr.Error(re.sub(r"'?/[^\s']+'?", "(a file)", message)) from None
        return self.check_image(image, what)

    def save_png(self, request: gr.Request | None, stem: str, image: Image.Image, settings: Mapping[str, Any]) -> str:
        """``image`` as a PNG named after ``stem`` in the session's folder, with ``settings`` in its metadata (a
        ``diffinv`` JSON text chunk, and a readable ``parameters`` one as other tools write it): what a download
        of a result gives."""
        info = PngInfo()
        info.add_text("parameters", ", ".join(f"{key}: {value}" for key, value in settings.items()))
        info.add_text("diffinv", json.dumps(dict(settings)))
        path = self.new_path(request, stem, ".png")
        image.save(path, format="PNG", pnginfo=info)
        return str(path)

    def load_inversion(self, file: str, request: gr.Request | None) -> tuple[Any, dict[str, str]]:
        """An uploaded ``.inv.safetensors``: checked against the model, copied into the session's folder and
        reconstructed; → the :class:`~diffinv.inversion.Inversion` and its :class:`SharedState` entry (whose image
        is the reconstruction's PNG)."""
        from diffinv import api
        from diffinv.inversion import Inversion

        inversion = self.run(Inversion.load, file, self.pipe, request=request)
        path = self.new_path(request, "inversion", ".inv.safetensors")
        inversion.save(path)
        image = self.run(api.reconstruct, self.pipe, inversion, request=request)[0]
        settings = inversion.settings
        shown = self.save_png(request, f"reconstruction-{inversion.method}", image, {"prompt": settings.prompt})
        return inversion, inversion_entry(str(path), shown, inversion)

    @staticmethod
    def generator(seed: float | None) -> torch.Generator:
        """A CPU generator seeded with the page's ``seed`` (empty: 0), or a message in the page for a seed that is
        not a whole number from 0 to :data:`~diffinv.config.MAX_SEED`."""
        value = 0 if seed is None else seed
        if not (float(value).is_integer() and 0 <= value <= MAX_SEED):
            raise gr.Error(f"the seed must be a whole number from 0 to {MAX_SEED}, got {value:g}")
        return torch.Generator().manual_seed(int(value))

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

    @staticmethod
    def browser_id(value: Any) -> str:
        """The browser's id as kept in its local storage, or a new one (random: an id is the key to its
        history, so it cannot be guessed)."""
        if isinstance(value, str) and re.fullmatch(r"[0-9a-f]{32}", value):
            return value
        return uuid.uuid4().hex

    def remember(
        self, browser: Any, *, inversion: dict[str, str] | None = None, edit: tuple[str, str] | None = None
    ) -> None:
        """Keep a browser's latest inversion and its edits on the server, so a page reload (or a result that
        arrives after one) loses nothing: :meth:`recall` gives them back."""
        if not isinstance(browser, str):
            return
        with self._lock:
            record = self._history.setdefault(browser, {"inversion": None, "edits": []})
            if inversion is not None:
                record["inversion"] = inversion
            if edit is not None:
                record["edits"] = [*record["edits"], edit][-MAX_HISTORY:]

    def recall(self, browser: Any) -> tuple[dict[str, str] | None, list[tuple[str, str]]]:
        """A browser's latest inversion and its edits (``(PNG path, prompt)``), as :meth:`remember` kept them."""
        with self._lock:
            record = self._history.get(browser) if isinstance(browser, str) else None
            return (None, []) if record is None else (record["inversion"], list(record["edits"]))

    def run(
        self,
        function: Callable[..., Any],
        *args: Any,
        request: gr.Request | None = None,
        exclusive: bool = False,
        **kwargs: Any,
    ) -> Any:
        """Call the library under the server's time limit and, given the ``request``, the session's Cancel button
        (:meth:`cancel`) and concepts (:meth:`add_concept`: loaded into the shared pipeline for this call alone,
        which then runs by itself, as does an ``exclusive`` call); its one-line errors (a timeout or a cancel
        included) become a message in the page instead of a traceback."""
        cancel = None if request is None else self._cancel_event(request)
        if cancel is not None:
            cancel.clear()  # a Cancel pressed before this call started does not apply to it
        concepts = self.concepts(request)
        try:
            with time_limit(self.limits.timeout_s, cancel):
                if not (concepts or exclusive):
                    with self._pipe_lock.shared():
                        return function(*args, **kwargs)
                with self._pipe_lock.exclusive(), loaded(self.pipe, concepts):
                    return function(*args, **kwargs)
        except DiffinvError as exc:
            raise gr.Error(str(exc)) from None

    def concepts(self, request: gr.Request | None) -> list[Any]:
        """The concepts this browser session learned or loaded (Concepts tab), in order."""
        if request is None:
            return []
        with self._lock:
            return list(self._concepts.get(self.session_dir(request).name, []))

    def add_concept(self, request: gr.Request | None, concept: Any) -> None:
        """Use ``concept`` in every later call of this session, after checking that it loads beside the session's
        other concepts (its token is new, its width and model fit)."""
        others = self.concepts(request)
        if any(set(concept.tokens) & set(other.tokens) for other in others):
            raise gr.Error(f"this session already uses a concept with the token {concept.token!r}")
        try:
            with self._pipe_lock.exclusive(), loaded(self.pipe, [*others, concept]):
                pass
        except DiffinvError as exc:
            raise gr.Error(str(exc)) from None
        with self._lock:
            self._concepts.setdefault(self.session_dir(request).name, []).append(concept)

    def _cancel_event(self, request: gr.Request | None) -> threading.Event:
        session = self.session_dir(request).name
        with self._lock:
            return self._cancels.setdefault(session, threading.Event())

    def cancel(self, request: gr.Request) -> None:
        """The session's Cancel button: its running job stops at its next UNet call."""
        self._cancel_event(request).set()
        gr.Info("cancelling: the job stops at its next step")

    def cleanup(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def result_image(label: str, elem_id: str) -> gr.Image:
    """A read-only image in the page, scaled up to :data:`IMAGE_HEIGHT` (see ``app.CSS``); a result given as a
    :meth:`UIContext.save_png` path downloads as that PNG."""
    return gr.Image(
        label=label,
        interactive=False,
        height=IMAGE_HEIGHT,
        elem_classes="scaled",
        elem_id=elem_id,
        format="png",
        type="filepath",
        buttons=RESULT_BUTTONS,
    )


def cancel_button(ctx: UIContext, elem_id: str) -> gr.Button:
    """A Cancel button: the session's running job stops at its next UNet call (:meth:`UIContext.cancel`); it runs
    outside the queue, so it is not waiting behind the job it cancels."""
    button = gr.Button("Cancel", variant="secondary", elem_id=elem_id)
    button.click(ctx.cancel, queue=False)
    return button


@dataclass(frozen=True)
class Tab:
    """One tab: its title and the function that lays it out inside ``gr.Tab`` (given the context and the
    cross-tab session state)."""

    title: str
    build: Callable[[UIContext, SharedState], None]


@dataclass
class SharedState:
    """Per-browser state the tabs share: the session's latest inversion, made in the Invert tab or loaded in any
    tab (the newest wins), as ``{"path": its file, "image": its reconstruction's PNG, "label": what it is}``; and
    a picture another tab sends to the Invert tab or the SDEdit canvas (``{"image": PNG path, "caption": its
    prompt}``)."""

    inversion: gr.State
    to_invert: gr.State
    to_sdedit: gr.State
    browser: gr.BrowserState
    """This browser's id (:meth:`UIContext.browser_id`), kept in its local storage across reloads."""
    app: gr.Blocks
    """The app, for a tab's ``app.load`` events (restoring what a reload would lose)."""


def inversion_entry(path: str, image: str, inversion: Any) -> dict[str, str]:
    """The :class:`SharedState` value for an inversion saved at ``path`` whose reconstruction is the PNG ``image``."""
    settings = inversion.settings
    label = f"{inversion.method} inversion ({settings.num_inference_steps} steps) of “{settings.prompt}”"
    return {"path": path, "image": image, "label": label, "prompt": settings.prompt}
