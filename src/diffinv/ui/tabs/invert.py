"""Invert tab: a photo (uploaded, bundled or a Shapes scene) and its caption → input | VAE round trip |
reconstruction with PSNR and seconds, and the ``.inv.safetensors`` to download; or upload a saved inversion.

Uploads are read by diffinv on arrival (a file that is not an image is one line in the page, never Gradio's error),
and the photo that will be inverted is kept on the server; Invert pressed before a picked example has arrived
inverts that example."""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr
import torch
from PIL import Image

from diffinv import api, images, metrics
from diffinv.bench.datasets import photo_samples, shapes_samples
from diffinv.inversion import Inversion
from diffinv.inversion.registry import DEFAULT_METHOD, METHODS, method_names
from diffinv.pipelines import default_size
from diffinv.ui.context import SharedState, Tab, UIContext, cancel_button, inversion_entry, result_image

EXAMPLE_SCENES = 4


def _examples() -> dict[str, tuple[Callable[[], Image.Image], str]]:
    samples = [*shapes_samples(EXAMPLE_SCENES), *photo_samples()]
    return {sample.id: (sample.load, sample.caption) for sample in samples}


def _pil(pixels: torch.Tensor) -> Image.Image:
    return images.pixels_to_output(pixels, "pil")[0]


def crop_note(image: Image.Image, height: int, width: int) -> str:
    """A warning when ``image``'s aspect ratio is not the model's (it will be center-cropped), else ``""``."""
    if image.width * height == image.height * width:
        return ""
    return (
        f"the photo is {image.width}×{image.height}: it will be center-cropped to the model's {width}×{height} "
        "aspect ratio before inverting"
    )


def build(ctx: UIContext, shared: SharedState) -> None:
    examples = _examples()
    height, width = default_size(ctx.pipe)
    photo = gr.State(None)  # the photo that will be inverted, as read on the server
    with gr.Row():
        with gr.Column():
            upload = gr.File(label="photo", file_types=["image"], elem_id="invert-upload")
            example = gr.Dropdown(
                choices=list(examples), value=None, label="or pick an example", elem_id="invert-example"
            )
            preview = result_image("photo to invert", "invert-photo")
            caption = gr.Textbox(
                label="caption (Enter inverts)", elem_id="invert-caption", info=ctx.caption_help or None
            )
            method = gr.Dropdown(
                choices=list(method_names()),
                value=DEFAULT_METHOD,
                label="method",
                info=METHODS[DEFAULT_METHOD].summary,
                elem_id="invert-method",
            )
            steps = gr.Number(
                value=0, precision=0, minimum=0, label="steps (0: the method's default)", elem_id="invert-steps"
            )
            run = gr.Button("Invert", variant="primary", elem_id="invert-run")
            cancel_button(ctx, "invert-cancel")
        with gr.Column():
            with gr.Row():
                shown_input = result_image("input", "invert-input")
                shown_vae = result_image("VAE round trip", "invert-vae")
                shown_reconstruction = result_image("reconstruction", "invert-reconstruction")
            stats = gr.Markdown(elem_id="invert-stats")
            repaint = gr.Button("Repaint the reconstruction in SDEdit (send to its canvas)", elem_id="invert-send")
            download = gr.File(label="inversion file", interactive=False, elem_id="invert-file")
            saved = gr.File(
                label="or load a saved .inv.safetensors", file_types=[".safetensors"], elem_id="invert-load"
            )

    def arrived(path: str | None):
        image = ctx.read_upload(path)
        note = crop_note(image, height, width)
        if note:
            gr.Warning(note)
        return image, image, None

    def to_canvas(entry):
        if not entry:
            raise gr.Error("invert a photo first")
        return {"image": entry["image"], "caption": entry["prompt"]}

    def received(entry):
        if not entry:
            return gr.update(), gr.update(), gr.update(), gr.update()
        image = images.open_image(entry["image"])
        gr.Info("the picture is in the Invert tab: check its caption and press Invert")
        return image, image, entry["caption"], None

    def pick(name: str | None):
        if not name:
            return gr.update(), gr.update(), gr.update()
        load, text = examples[name]
        image = load()
        return image, image, text

    def invert(image, name, text, method_name, num_steps, browser, request: gr.Request,
               progress=gr.Progress(track_tqdm=True)):  # fmt: skip
        if name and (image is None or not text):  # Invert pressed before the picked example reached the page
            image, _, example_caption = pick(name)
            text = text or example_caption
        source = ctx.check_image(image)
        steps = int(num_steps) if num_steps else None
        inversion = ctx.run(
            api.invert, ctx.pipe, source, text, method_name, num_inference_steps=steps, progress=True, request=request
        )
        path = ctx.new_path(request, "inversion", ".inv.safetensors")
        inversion.save(path)
        shown = _scores(inversion, source, request)
        entry = inversion_entry(str(path), shown[2], inversion)
        ctx.remember(browser, inversion=entry)
        return (*shown, str(path), entry)

    def load_saved(file, browser, request: gr.Request, progress=gr.Progress(track_tqdm=True)):
        if file is None:
            raise gr.Error("choose an .inv.safetensors file")
        _, entry = ctx.load_inversion(file, request)
        ctx.remember(browser, inversion=entry)
        return None, None, entry["image"], f"loaded {entry['label']}", entry["path"], entry

    def _scores(inversion: Inversion, source: Image.Image, request: gr.Request) -> tuple[str, str, str, str]:
        check = ctx.run(api.check_reconstruction, ctx.pipe, inversion, source, request=request)
        psnr = metrics.psnr(check.reconstruction, check.target)
        vae_psnr = metrics.psnr(check.vae_round_trip, check.target)
        text = (
            f"**PSNR {psnr:.2f} dB** vs the photo (VAE round trip {vae_psnr:.2f} dB) · "
            f"{inversion.stats.seconds:.1f} s · {inversion.method}, {inversion.settings.num_inference_steps} steps"
        )
        settings = {**_settings(inversion), "psnr_db": round(psnr, 3)}
        pictures = (("input", check.target), ("vae-round-trip", check.vae_round_trip))
        pictures += ((f"reconstruction-{inversion.method}", check.reconstruction),)
        paths = [ctx.save_png(request, stem, _pil(pixels), settings) for stem, pixels in pictures]
        return (*paths, text)

    outputs = [shown_input, shown_vae, shown_reconstruction, stats, download, shared.inversion]
    upload.upload(arrived, inputs=upload, outputs=[photo, preview, example])
    repaint.click(to_canvas, inputs=shared.inversion, outputs=shared.to_sdedit)
    method.change(lambda name: gr.update(info=METHODS[name].summary), inputs=method, outputs=method)
    upload.clear(lambda: (None, None), outputs=[photo, preview])
    shared.to_invert.change(received, inputs=shared.to_invert, outputs=[photo, preview, caption, example])
    example.input(pick, inputs=example, outputs=[photo, preview, caption])
    inputs = [photo, example, caption, method, steps, shared.browser]
    run.click(invert, inputs=inputs, outputs=outputs)
    caption.submit(invert, inputs=inputs, outputs=outputs)
    saved.upload(load_saved, inputs=[saved, shared.browser], outputs=outputs)


def _settings(inversion: Inversion) -> dict[str, object]:
    """What a result image's PNG metadata records of the inversion it comes from."""
    settings = inversion.settings
    return {
        "method": inversion.method,
        "prompt": settings.prompt,
        "steps": settings.num_inference_steps,
        "guidance_scale": settings.guidance_scale,
        "size": f"{settings.width}x{settings.height}",
    }


TAB = Tab("Invert", build)
