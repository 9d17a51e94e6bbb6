"""Build and serve the app: the tabs of :mod:`diffinv.ui.registry` over one pipeline, offline (no analytics, no
share links, system fonts instead of web fonts), with a bounded queue and upload limits."""

from __future__ import annotations

import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402

from diffinv.ui.context import SharedState, UIContext  # noqa: E402
from diffinv.ui.registry import TABS  # noqa: E402

# System font stacks: the default theme would fetch web fonts from a CDN, which fails offline.
THEME = gr.themes.Default(font=["system-ui", "sans-serif"], font_mono=["ui-monospace", "monospace"])
# Small models make small images (64 px for the built-in one): scale them up to the box, keeping the pixels sharp.
CSS = (
    ".scaled img { width: 100%; height: 100%; object-fit: contain; image-rendering: pixelated; }"
    " #bench-table td, #bench-table th { white-space: nowrap; }"  # numbers never wrap mid-digit
    " #bench-table { overflow-x: auto; }"
    # an error is a message (a toast); the results of earlier runs stay visible instead of an "Error" overlay
    ' [data-testid="status-tracker"]:has(> span.error) { display: none; }'
)


def build_app(ctx: UIContext) -> gr.Blocks:
    """The app: one ``gr.Tab`` per registered tab, sharing the session's latest inversion."""
    with gr.Blocks(title="diffinv", analytics_enabled=False, delete_cache=(3600, 3600)) as app:
        gr.Markdown("# diffinv — invert, edit and repaint photos with Stable Diffusion")
        shared = SharedState(
            inversion=gr.State(None),
            to_invert=gr.State(None),
            to_sdedit=gr.State(None),
            browser=gr.BrowserState(None, storage_key="diffinv-browser"),
            app=app,
        )
        app.load(ctx.browser_id, inputs=shared.browser, outputs=shared.browser)
        for tab in TABS.values():
            with gr.Tab(tab.title):
                tab.build(ctx, shared)
    app.queue(default_concurrency_limit=ctx.limits.concurrency)
    return app


def launch(ctx: UIContext, *, host: str = "127.0.0.1", port: int = 7860, block: bool = True) -> gr.Blocks:
    """Serve the app on ``host:port``; with ``block=False`` return once it is up (tests)."""
    app = build_app(ctx)
    app.launch(
        server_name=host,
        server_port=port,
        share=False,
        inbrowser=False,
        show_error=True,
        max_file_size=int(ctx.limits.max_upload_mb * 1024 * 1024),  # bytes
        allowed_paths=[str(ctx.root)],
        prevent_thread_lock=not block,
        theme=THEME,
        css=CSS,
        quiet=True,
    )
    return app
