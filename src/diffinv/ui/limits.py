"""What one request to the web app may cost the server (no gradio, no torch: the command line reads the options)."""

from __future__ import annotations

from dataclasses import dataclass

from diffinv.config import Config, setting
from diffinv.errors import check_integer, check_number


@dataclass(frozen=True)
class ServerLimits(Config):
    """What one request may cost the server. ``diffinv ui`` runs one job per CPU core at once unless told
    otherwise; a :class:`~diffinv.ui.context.UIContext` made without limits, one."""

    max_upload_mb: float = setting(20.0, "largest upload in MB (Gradio refuses larger files before any handler)")
    max_pixels: int = setting(
        4096 * 4096, "largest uploaded image, width × height (checked before any work)", option=False
    )
    timeout_s: float = setting(
        600.0,
        "seconds before a job is stopped, at its next UNet call, with a message (diffinv.denoiser.time_limit)",
        aliases=("--timeout",),
    )
    concurrency: int = setting(1, "jobs that run at once; the rest wait in the queue")

    def __post_init__(self) -> None:
        check_number("max_upload_mb", self.max_upload_mb, minimum=0, above=True)
        check_integer("max_pixels", self.max_pixels, minimum=1)
        check_number("timeout_s", self.timeout_s, minimum=0, above=True)
        check_integer("concurrency", self.concurrency, minimum=1)
