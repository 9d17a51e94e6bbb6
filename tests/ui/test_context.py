"""The web app's shared context and widget parsing, without a browser."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

gr = pytest.importorskip("gradio", reason="the web app needs the ui extra (pip install 'diffinv[ui]')")

from diffinv import api  # noqa: E402
from diffinv.errors import DiffinvError  # noqa: E402
from diffinv.ui.context import UIContext  # noqa: E402
from diffinv.ui.limits import ServerLimits  # noqa: E402
from diffinv.ui.tabs.edit import parse_weights  # noqa: E402
from diffinv.ui.tabs.sdedit import painted_region, painting, union  # noqa: E402


class Request:
    def __init__(self, session_hash):
        self.session_hash = session_hash


def test_limits_are_validated():
    for bad in ({"max_upload_mb": 0}, {"max_pixels": 0}, {"timeout_s": float("inf")}, {"concurrency": 0}):
        with pytest.raises(DiffinvError):
            ServerLimits(**bad)


def test_sessions_get_their_own_folders_and_cleanup_removes_them(pipe):
    ctx = UIContext(pipe)
    a, b = ctx.new_path(Request("aaa"), "x", ".png"), ctx.new_path(Request("bbb"), "x", ".png")
    assert a.parent != b.parent and a.parent.parent == b.parent.parent == ctx.root
    assert ctx.new_path(Request("aaa"), "x", ".png") != a  # never reused
    with pytest.raises(gr.Error):
        ctx.session_dir(Request("../../etc"))
    ctx.cleanup()
    assert not ctx.root.exists()


def test_library_errors_and_timeouts_become_page_messages(pipe):
    ctx = UIContext(pipe, ServerLimits(timeout_s=1e-9))
    with pytest.raises(gr.Error, match="time limit"):
        ctx.run(api.generate, pipe, "x", num_inference_steps=2)
    ctx = UIContext(pipe)
    with pytest.raises(gr.Error, match="num_inference_steps"):
        ctx.run(api.generate, pipe, "x", num_inference_steps=0)
    assert ctx.run(api.generate, pipe, "x", num_inference_steps=2, output_type="np").shape == (1, 64, 64, 3)
    ctx.cleanup()


def test_images_over_the_pixel_limit_are_refused(pipe):
    ctx = UIContext(pipe, ServerLimits(max_pixels=100))
    with pytest.raises(gr.Error, match="at most 100 pixels"):
        ctx.check_image(Image.new("RGB", (11, 10)))
    with pytest.raises(gr.Error, match="upload a photo"):
        ctx.check_image(None)
    assert ctx.check_image(Image.new("L", (10, 10))).mode == "RGB"
    ctx.cleanup()


def test_word_weights():
    assert parse_weights("red=2, circle = 0.5") == {"red": 2.0, "circle": 0.5}
    assert parse_weights("  ") == {}
    assert parse_weights("a=b=2") == {"a=b": 2.0}  # split at the last "=", as the command line's --reweight
    for bad in ("red", "red=x", "=2"):
        with pytest.raises(gr.Error, match="WORD=SCALE"):
            parse_weights(bad)


def test_painting_and_masks_from_the_editor_values():
    background = Image.new("RGB", (8, 8), "white")
    layer = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    layer.putpixel((2, 3), (255, 0, 0, 255))
    composite = background.copy()
    composite.putpixel((2, 3), (255, 0, 0))
    value = {"background": background, "layers": [layer], "composite": composite}
    assert painting(value).getpixel((2, 3)) == (255, 0, 0)
    strokes = painted_region(value)
    assert np.argwhere(np.asarray(strokes) > 0).tolist() == [[3, 2]]
    assert painted_region({"background": background, "layers": [], "composite": background}) is None
    other = Image.new("L", (8, 8))
    other.putpixel((7, 7), 255)
    assert np.argwhere(np.asarray(union(strokes, None, other)) > 0).tolist() == [[3, 2], [7, 7]]
    assert union(None, None) is None
    with pytest.raises(gr.Error, match="paint"):
        painting(None)


def test_sigterm_stops_the_server_and_removes_the_session_files(tmp_path):
    """A service manager's stop (SIGTERM) cleans up as Ctrl-C does: no user's files are left behind."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "TMPDIR": str(tmp_path), "GRADIO_ANALYTICS_ENABLED": "False"}
    command = [sys.executable, "-m", "diffinv.cli", "ui", "--port", str(port)]
    server = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and server.poll() is None:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.5)
        else:
            pytest.fail(f"the web app did not start (exit code {server.poll()})")
        assert server.poll() is None, server.stdout.read()
        assert list(tmp_path.glob("diffinv-ui-*")), "the session folder exists while serving"
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=60) is not None
    finally:
        server.kill()
    assert not list(tmp_path.glob("diffinv-ui-*")), server.stdout.read()


def test_seeds_outside_a_generators_range_are_a_message_in_the_page():
    from diffinv.config import MAX_SEED

    assert UIContext.generator(None).initial_seed() == 0
    assert UIContext.generator(MAX_SEED).initial_seed() == MAX_SEED
    for bad in (-1, 2**70, 1.5):
        with pytest.raises(gr.Error, match="the seed must be a whole number"):
            UIContext.generator(bad)


def test_cancel_stops_the_sessions_job_at_its_next_unet_call_and_no_other(pipe):
    ctx = UIContext(pipe)
    calls = []

    def press_cancel(module, args, output):
        calls.append(1)
        ctx.cancel(Request("aaa"))  # pressed while the first UNet call runs

    handle = pipe.unet.register_forward_hook(press_cancel)
    try:
        with pytest.raises(gr.Error, match="stopped: cancelled"):
            ctx.run(api.generate, pipe, "a photo", num_inference_steps=5, request=Request("aaa"))
        assert len(calls) == 1
        calls.clear()
        ctx.run(api.generate, pipe, "a photo", num_inference_steps=2, request=Request("bbb"))  # other session
        assert len(calls) == 2
    finally:
        handle.remove()
    ctx.cleanup()


def test_the_built_in_models_words_are_offered_beside_the_captions_and_no_others():
    from diffinv.cli.commands.ui import _caption_help

    assert "shapes: circle" in _caption_help(None) and "backgrounds:" in _caption_help("mini")
    assert _caption_help("runs/my-model") == ""


def test_the_bench_table_in_the_page_leaves_out_unavailable_metrics_and_server_paths():
    from diffinv.ui.tabs.bench import page_table

    summary = (
        "| method | PSNR ↑ | LPIPS ↓ |\n|---|---|---|\n| ddim | 21.605 | unavailable |\n\n"
        "- lpips: unavailable: LPIPS needs AlexNet weights in /root/.cache/torch/hub/checkpoints\n"
    )
    assert page_table(summary) == "| method | PSNR ↑ |\n| --- | --- |\n| ddim | 21.605 |"


def test_a_sessions_concepts_are_loaded_for_its_calls_alone(pipe):
    import torch

    from diffinv.personalization import Concept

    ctx = UIContext(pipe)
    width = pipe.text_encoder.get_input_embeddings().weight.shape[1]
    concept = Concept("<t>", torch.randn(1, width, generator=torch.Generator().manual_seed(0)) * 5)
    ctx.add_concept(Request("aaa"), concept)
    vocabulary = dict(pipe.tokenizer.get_vocab())

    def image(session):
        generator = torch.Generator().manual_seed(0)
        return ctx.run(api.generate, pipe, "a <t>", num_inference_steps=2, generator=generator, output_type="pt",
                       request=Request(session))  # fmt: skip

    with_concept, without = image("aaa"), image("bbb")
    assert not torch.equal(with_concept, without) and torch.equal(image("aaa"), with_concept)
    assert pipe.tokenizer.get_vocab() == vocabulary  # loaded for the call only
    with pytest.raises(gr.Error, match="already uses a concept with the token"):
        ctx.add_concept(Request("aaa"), concept)
    ctx.cleanup()
