"""``diffinv ui``: the web app, served on this machine."""

from __future__ import annotations

import argparse
import os
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


def run(args: argparse.Namespace) -> dict[str, Any]:
    from diffinv.errors import DiffinvError
    from diffinv.ui.limits import ServerLimits

    limits = ServerLimits(**({"concurrency": os.cpu_count() or 1} | config_values(args, ServerLimits)))
    try:
        from diffinv.ui.app import launch
        from diffinv.ui.context import UIContext
    except ImportError as exc:
        raise DiffinvError(f"the web app needs the ui extra (pip install 'diffinv[ui]'): {exc}") from None

    ctx = UIContext(load_model(args), limits)
    print(f"diffinv ui: serving on http://{args.host}:{args.port} (Ctrl-C stops it)")
    try:
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
