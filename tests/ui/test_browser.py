"""The web app in a real browser: Playwright driving the system's Chromium against a server on a free loopback port.

Skipped with a one-line reason when gradio, playwright or chromium is missing (``.ci/run`` installs them all).
Screenshots of every tab are written to ``$DIFFINV_UI_SCREENSHOTS`` (default: pytest's temporary folder);
``make ui-screenshots`` refreshes the ones in ``docs/images/ui/``, on the built-in model (``$DIFFINV_UI_MODEL``).
"""

from __future__ import annotations

import os
import re
import shutil
import socket
from pathlib import Path

import pytest
from PIL import Image

gr = pytest.importorskip("gradio", reason="the web app needs the ui extra (pip install 'diffinv[ui]')")
sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need playwright (pip install playwright)")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip("browser tests need Debian's chromium package (apt-get install chromium)", allow_module_level=True)

from diffinv import api, images, metrics, shapes  # noqa: E402
from diffinv.inversion import Inversion  # noqa: E402
from diffinv.pipelines import load_pipeline  # noqa: E402
from diffinv.testing import tiny_pipeline  # noqa: E402
from diffinv.ui.app import launch  # noqa: E402
from diffinv.ui.context import UIContext  # noqa: E402
from diffinv.ui.limits import ServerLimits  # noqa: E402

MAX_PIXELS = 300 * 300
TIMEOUT_MS = 120_000
STEPS = int(os.environ.get("DIFFINV_UI_STEPS", "3"))  # 0: the method's default


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def ui_pipe():
    """The tiny in-code model, or ``$DIFFINV_UI_MODEL`` (``make ui-screenshots`` uses the built-in ``mini``)."""
    model = os.environ.get("DIFFINV_UI_MODEL")
    return load_pipeline(model) if model else tiny_pipeline(seed=0)


@pytest.fixture(scope="module")
def server(ui_pipe):
    ctx = UIContext(ui_pipe, ServerLimits(max_upload_mb=2, max_pixels=MAX_PIXELS, concurrency=2))
    port = _free_port()
    app = launch(ctx, port=port, block=False)
    yield f"http://127.0.0.1:{port}", ctx
    app.close()
    ctx.cleanup()
    assert not ctx.root.exists()  # temporary files are cleaned


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    folder = Path(os.environ.get("DIFFINV_UI_SCREENSHOTS") or tmp_path_factory.mktemp("screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _scene(tmp_path: Path, index: int) -> tuple[Path, str]:
    scene = shapes.dataset("test", index + 1, seed=7)[index]
    path = tmp_path / f"scene{index}.png"
    Image.fromarray(shapes.render(scene, 64)).save(path)
    return path, shapes.caption(scene)


def _open(context, url: str):
    page = context.new_page()
    outside: list[str] = []
    page.on(
        "request",
        lambda r: outside.append(r.url) if not r.url.startswith(("http://127.0.0.1", "data:", "blob:")) else None,
    )
    page.goto(url)
    page.wait_for_selector("#invert-run", timeout=TIMEOUT_MS)
    return page, outside


def _open_tab(browser, url: str, tab: str):
    context = browser.new_context()
    page, _ = _open(context, url)
    page.get_by_role("tab", name=tab, exact=True).click()
    return context, page


def _start_invert(page, photo: Path, caption: str) -> None:
    page.set_input_files("#invert-upload input[type=file]", str(photo))
    page.wait_for_selector("#invert-photo img", timeout=TIMEOUT_MS)  # read on the server
    page.fill("#invert-caption textarea", caption)
    page.fill("#invert-steps input", str(STEPS))
    page.click("#invert-run")


def _invert_result(page) -> str:
    page.wait_for_function(
        "() => document.querySelector('#invert-stats')?.innerText.includes('PSNR')", timeout=TIMEOUT_MS
    )
    return page.inner_text("#invert-stats")


def _api_psnr(pipe, photo: Path, caption: str) -> float:
    image = images.open_image(photo)
    inversion = api.invert(pipe, image, caption, "prompt-tokens", num_inference_steps=STEPS or None)
    target = (images.prepare_image(image, inversion.settings.height, inversion.settings.width) + 1) / 2
    latents = api.reconstruct(pipe, inversion, output_type="latent")
    return metrics.psnr(images.decode(pipe.vae, latents).cpu(), target)


def _psnr(text: str) -> float:
    return float(re.search(r"PSNR ([\d.]+) dB", text).group(1))


def test_invert_shows_the_apis_psnr_and_the_file_loads(server, browser, ui_pipe, tmp_path, screenshots):
    url, _ = server
    context = browser.new_context(accept_downloads=True)
    page, outside = _open(context, url)
    photo, caption = _scene(tmp_path, 0)
    _start_invert(page, photo, caption)
    text = _invert_result(page)
    assert _psnr(text) == pytest.approx(_api_psnr(ui_pipe, photo, caption), abs=0.006)
    page.wait_for_selector("#invert-reconstruction img", timeout=TIMEOUT_MS)
    page.screenshot(path=str(screenshots / "invert.png"), full_page=True)
    with page.expect_download() as download:
        page.click("#invert-file a")
    saved = tmp_path / "downloaded.inv.safetensors"
    download.value.save_as(saved)
    inversion = Inversion.load(saved, ui_pipe)
    assert inversion.method == "prompt-tokens" and inversion.settings.prompt == caption
    page.set_input_files("#invert-load input[type=file]", str(saved))  # a saved inversion, uploaded back
    page.wait_for_function(
        "() => document.querySelector('#invert-stats')?.innerText.includes('loaded prompt-tokens inversion')",
        timeout=TIMEOUT_MS,
    )
    page.get_by_role("tab", name="Edit", exact=True).click()
    which = page.inner_text("#edit-which")
    steps = STEPS or "[0-9]+"  # 0: the method's default
    assert re.search(rf"Will edit the prompt-tokens inversion \({steps} steps\) of “{re.escape(caption)}”", which)
    assert page.input_value("#edit-target textarea") == caption  # pre-filled: change one word
    page.fill("#edit-target textarea", caption.replace("circle", "square"))
    page.click("#edit-run")
    page.wait_for_selector("#edit-result img", timeout=TIMEOUT_MS)
    page.screenshot(path=str(screenshots / "edit.png"), full_page=True)
    assert outside == []  # offline: nothing fetched from anywhere but the app
    context.close()


def test_sdedit_canvas_strokes_give_an_image(server, browser, screenshots):
    context, page = _open_tab(browser, server[0], "SDEdit")
    page.click("#sdedit-canvas button[aria-label='Brush']")
    canvas = page.locator("#sdedit-canvas canvas").first
    canvas.wait_for(timeout=TIMEOUT_MS)
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.3, box["y"] + box["height"] * 0.3)
    page.mouse.down()
    for k in range(1, 11):
        page.mouse.move(box["x"] + box["width"] * (0.3 + 0.04 * k), box["y"] + box["height"] * (0.3 + 0.03 * k))
    page.mouse.up()
    page.fill("#sdedit-prompt textarea", "a large red circle in the center on a white background")
    page.click("#sdedit-run")
    page.wait_for_selector("#sdedit-result img", timeout=TIMEOUT_MS)
    page.screenshot(path=str(screenshots / "sdedit.png"), full_page=True)
    first = page.get_attribute("#sdedit-result img", "src")
    page.get_by_text("mask (optional)").click()  # now only where the strokes are may change
    page.check("#sdedit-stroke-mask input")
    page.click("#sdedit-run")
    page.wait_for_function(
        f"() => document.querySelector('#sdedit-result img')?.getAttribute('src') !== {first!r}", timeout=TIMEOUT_MS
    )
    page.click("#sdedit-strip")  # the trade-off strip: one result per strength
    page.wait_for_function(
        "() => document.querySelectorAll('#sdedit-strip-gallery img').length >= 4", timeout=TIMEOUT_MS
    )
    context.close()


def test_four_browsers_at_once_each_get_their_own_result(server, browser, ui_pipe, tmp_path):
    url, _ = server
    contexts = [browser.new_context() for _ in range(4)]
    pages = [_open(context, url)[0] for context in contexts]
    scenes = [_scene(tmp_path, i) for i in range(4)]
    for page, (photo, caption) in zip(pages, scenes, strict=True):  # start all four before waiting for any
        _start_invert(page, photo, caption)
    for page, (photo, caption) in zip(pages, scenes, strict=True):
        assert _psnr(_invert_result(page)) == pytest.approx(_api_psnr(ui_pipe, photo, caption), abs=0.006)
    for context in contexts:
        context.close()


def test_an_oversized_upload_shows_the_limit(server, browser, tmp_path):
    url, _ = server
    context = browser.new_context()
    page, _ = _open(context, url)
    big = tmp_path / "big.png"
    Image.new("RGB", (400, 400), "red").save(big)
    page.set_input_files("#invert-upload input[type=file]", str(big))
    page.wait_for_selector("text=this server takes at most", timeout=TIMEOUT_MS)
    context.close()


def test_uploads_that_are_not_images_get_one_readable_line(server, browser, tmp_path):
    url, _ = server
    context = browser.new_context()
    page, _ = _open(context, url)
    fake = tmp_path / "notes.png"
    fake.write_text("not an image at all")
    whole = tmp_path / "whole.png"
    _scene_image = Image.new("RGB", (64, 64), "red")
    _scene_image.save(whole)
    cut = tmp_path / "cut.png"
    cut.write_bytes(whole.read_bytes()[:-40])  # truncated
    for bad in (fake, cut):
        page.set_input_files("#invert-upload input[type=file]", str(bad))
        toast = page.wait_for_selector(".toast-body", timeout=TIMEOUT_MS)
        text = toast.inner_text()
        assert "the uploaded photo" in text and "/tmp" not in text and str(tmp_path) not in text, text
        page.reload()
        page.wait_for_selector("#invert-run", timeout=TIMEOUT_MS)
    context.close()


def test_an_example_inverts_at_once_and_results_download_as_png_with_settings(server, browser, tmp_path):
    url, _ = server
    context = browser.new_context(accept_downloads=True)
    page, _ = _open(context, url)
    page.click("#invert-example input")
    page.locator("#invert-example ul li").first.click()
    page.fill("#invert-steps input", str(STEPS))
    page.click("#invert-run")  # at once: the example is on the server already, or Invert waits for it
    text = _invert_result(page)
    assert "PSNR" in text and page.locator(".toast-body").count() == 0  # no "upload a photo first"
    with page.expect_download() as download:
        page.locator("#invert-reconstruction button[aria-label='Download']").click()
    name = download.value.suggested_filename
    saved = tmp_path / name
    download.value.save_as(saved)
    assert re.fullmatch(r"reconstruction-prompt-tokens-\d{4}\.png", name), name
    with Image.open(saved) as image:
        assert image.format == "PNG" and '"method": "prompt-tokens"' in image.text["diffinv"]
    context.close()


def test_bench_tab_runs_a_small_bench(server, browser, screenshots):
    context, page = _open_tab(browser, server[0], "Bench")
    for method in ("null-text", "prompt-tokens", "negative-prompt", "direct"):
        page.get_by_label(method, exact=True).uncheck()
    page.click("#bench-run")
    page.wait_for_function(
        "() => document.querySelector('#bench-table')?.innerText.includes('ddim')", timeout=TIMEOUT_MS
    )
    page.wait_for_selector("#bench-plot img", timeout=TIMEOUT_MS)
    assert "null-text" not in page.inner_text("#bench-table")
    page.screenshot(path=str(screenshots / "bench.png"), full_page=True)
    context.close()


def test_generate_and_send_the_image_to_the_invert_tab(server, browser):
    context, page = _open_tab(browser, server[0], "Generate")
    page.fill("#generate-prompt textarea", "a large red circle in the center on a white background")
    page.fill("#generate-seed input", str(2**70))
    page.click("#generate-run")
    assert "the seed must be a whole number" in page.wait_for_selector(".toast-body", timeout=TIMEOUT_MS).inner_text()
    page.fill("#generate-seed input", "3")
    page.click("#generate-run")
    page.wait_for_selector("#generate-result img", timeout=TIMEOUT_MS)
    page.click("#generate-send")
    page.get_by_role("tab", name="Invert", exact=True).click()
    page.wait_for_selector("#invert-photo img", timeout=TIMEOUT_MS)
    assert page.input_value("#invert-caption textarea") == "a large red circle in the center on a white background"
    page.fill("#invert-steps input", str(STEPS))
    page.click("#invert-run")
    assert "PSNR" in _invert_result(page)
    context.close()


def test_cancel_stops_a_running_inversion(server, browser):
    url, _ = server
    context = browser.new_context()
    page, _ = _open(context, url)
    page.click("#invert-example input")
    page.locator("#invert-example ul li").first.click()
    page.fill("#invert-steps input", "900")  # long enough to be running when Cancel is pressed
    page.click("#invert-run")
    page.wait_for_timeout(2000)
    page.click("#invert-cancel")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.toast-body')].some(t => t.innerText.includes('stopped: cancelled'))",
        timeout=TIMEOUT_MS,
    )
    assert "PSNR" not in page.inner_text("#invert-stats")
    context.close()


def test_a_reconstruction_goes_to_the_sdedit_canvas(server, browser, tmp_path):
    url, _ = server
    context = browser.new_context()
    page, _ = _open(context, url)
    photo, caption = _scene(tmp_path, 2)
    _start_invert(page, photo, caption)
    _invert_result(page)
    page.click("#invert-send")
    page.get_by_role("tab", name="SDEdit", exact=True).click()
    page.wait_for_function(
        f"() => document.querySelector('#sdedit-prompt textarea')?.value === {caption!r}", timeout=TIMEOUT_MS
    )
    page.click("#sdedit-run")  # the reconstruction is the guide: no strokes needed
    page.wait_for_selector("#sdedit-result img", timeout=TIMEOUT_MS)
    context.close()


def test_results_survive_a_reload_and_an_error_leaves_them_visible(server, browser, tmp_path):
    url, _ = server
    context = browser.new_context()
    page, _ = _open(context, url)
    photo, caption = _scene(tmp_path, 3)
    _start_invert(page, photo, caption)
    text = _invert_result(page)
    page.fill("#invert-caption textarea", "")
    page.click("#invert-example input")  # an error: no caption (the example list is only opened and closed)
    page.keyboard.press("Escape")
    page.click("#invert-run")
    page.wait_for_selector(".toast-body", timeout=TIMEOUT_MS)
    assert page.inner_text("#invert-stats") == text  # the earlier result, no "Error" over it
    page.get_by_role("tab", name="Edit", exact=True).click()
    page.fill("#edit-target textarea", caption.replace("circle", "square"))
    page.click("#edit-run")
    page.wait_for_selector("#edit-result img", timeout=TIMEOUT_MS)
    page.reload()
    page.wait_for_selector("#invert-run", timeout=TIMEOUT_MS)
    page.get_by_role("tab", name="Edit", exact=True).click()
    page.wait_for_function(
        "() => document.querySelectorAll('.gallery-item img, [data-testid=\"gallery\"] img').length >= 1",
        timeout=TIMEOUT_MS,
    )
    page.wait_for_function(  # the inversion to edit is back too
        f"() => document.querySelector('#edit-which')?.innerText.includes({f'of “{caption}”'!r})", timeout=TIMEOUT_MS
    )
    context.close()


def test_a_concept_learned_in_the_concepts_tab_works_in_generate(server, browser, tmp_path):
    context, page = _open_tab(browser, server[0], "Concepts")
    shot = tmp_path / "shot.png"
    Image.new("RGB", (64, 64), "red").save(shot)
    page.set_input_files("#concepts-shots input[type=file]", [str(shot)])
    page.fill("#concepts-token textarea", "<redthing>")
    page.click("#concepts-run")  # no class word
    assert "class word" in page.wait_for_selector(".toast-body", timeout=TIMEOUT_MS).inner_text()
    page.fill("#concepts-init textarea", "toy")
    page.fill("#concepts-steps input", "2")
    page.click("#concepts-run")
    page.wait_for_function(
        "() => document.querySelector('#concepts-used')?.innerText.includes('<redthing>')", timeout=TIMEOUT_MS
    )
    page.get_by_role("tab", name="Generate", exact=True).click()
    page.fill("#generate-prompt textarea", "a <redthing> on a table")
    page.fill("#generate-steps input", "3")
    page.click("#generate-run")
    page.wait_for_selector("#generate-result img", timeout=TIMEOUT_MS)
    context.close()
