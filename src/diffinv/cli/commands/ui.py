"""``diffinv ui``: the web app, served on this machine."""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import threading
from collections.abc import Iterator
from typing import Any

from diffinv.cli.options import Command, add_config_options, add_model_options, config_values, count, load_model


def build(parser: argparse.ArgumentParser) -> None:
    from diffinv.ui.limits import ServerLimits

    parser.add_argument(
        "--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1, this machine only)"
    )
    parser.add_argument("--port", type=count(1, 65535), default=7860, help="default: 7860")
    add_config_options(parser, ServerLimits, "server limits")
    add_model_options(parser)


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """Inside: SIGTERM (what service managers and ``kill`` send) stops the app as Ctrl-C does, so the server closes
    and the session files are removed; the previous handler is restored after. Only the main thread can set
    handlers; elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def check_address(host: str, port: int) -> None:
    """Refuse, in one line and before the model loads, an address this machine cannot listen on: a host that does
    not resolve or is not local, or a port that is taken (the server would fail after announcing itself)."""
    from diffinv.errors import DiffinvError

    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except socket.gaierror as exc:
        raise DiffinvError(f"--host {host!r} is not an address of this machine: {exc.strerror}") from None
    try:
        with socket.socket(family, kind, proto) as probe:
            probe.bind(address)
    except OSError as exc:
        raise DiffinvError(f"cannot listen on {host}:{port}: {exc.strerror} (pick another --port or --host)") from None


def run(args: argparse.Namespace) -> dict[str, Any]:
    from diffinv.errors import DiffinvError
    from diffinv.ui.limits import ServerLimits

    limits = ServerLimits(**({"concurrency": os.cpu_count() or 1} | config_values(args, ServerLimits)))
    try:
        from diffinv.ui.app import launch
        from diffinv.ui.context import UIContext
    except ImportError as exc:
        raise DiffinvError(f"the web app needs the ui extra (pip install 'diffinv[ui]'): {exc}") from None

    check_address(args.host, args.port)
    ctx = UIContext(load_model(args), limits, caption_help=_caption_help(args.model))
    print(f"diffinv ui: serving on http://{args.host}:{args.port} (Ctrl-C stops it)", flush=True)
    try:
        with sigterm_as_interrupt():
            launch(ctx, host=args.host, port=args.port)
    finally:
        ctx.cleanup()
    return {}


COMMAND = Command(
    help="start the web app (Gradio) on this machine: invert, edit and SDEdit in the browser",
    description="Serves the app on --host:--port (loopback by default), offline. Needs the ui extra: "
    "pip install 'diffinv[ui]'.",
    build=build,
    run=run,
)


def _caption_help(model: str | None) -> str:
    """The words the built-in model knows (its Shapes world's), for the caption fields; nothing for other models."""
    from diffinv.pipelines import BUILTIN_MODELS
    from diffinv.shapes.world import DEFAULT_WORLD, caption_words, get_world

    return caption_words(get_world(DEFAULT_WORLD)) if model is None or model in BUILTIN_MODELS else ""
