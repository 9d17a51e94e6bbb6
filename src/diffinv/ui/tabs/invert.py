"""Invert tab: a photo (uploaded, bundled or a Shapes scene) and its caption → input | VAE round trip |
reconstruction with PSNR and seconds, and the ``.inv.safetensors`` to download; or upload a saved inversion."""

from __future__ import annotations

from collections.abc import Callable

import gradio as gr
import torch
from PIL import Image

from diffinv import api, images, metrics
from diffinv.bench.datasets import photo_samples, shapes_samples
from diffinv.inversion import Inversion
from diffinv.inversion.registry import DEFAULT_METHOD, method_names
from diffinv.ui.context import IMAGE_HEIGHT, SharedState, Tab, UIContext, result_image

EXAMPLE_SCENES = 4


def _examples() -> dict[str, tuple[Callable[[], Image.Image], str]]:
    samples = [*shapes_samples(EXAMPLE_SCENES), *photo_samples()]
    return {sample.id: (sample.load, sample.caption) for sample in samples}


def _pil(pixels: torch.Tensor) -> Image.Image:
    return images.pixels_to_output(pixels, "pil")[0]


def build(ctx: UIContext, shared: SharedState) -> None:
    examples = _examples()
    with gr.Row():
        with gr.Column():
            photo = gr.Image(
                type="pil",
                label="photo",
                sources=["upload"],
                height=IMAGE_HEIGHT,
                elem_classes="scaled",
                elem_id="invert-photo",
            )
            example = gr.Dropdown(
                choices=list(examples), value=None, label="or pick an example", elem_id="invert-example"
            )
            caption = gr.Textbox(label="caption", elem_id="invert-caption")
            method = gr.Dropdown(choices=list(method_names()), value=DEFAULT_METHOD, label="method")
            steps = gr.Number(
                value=0, precision=0, minimum=0, label="steps (0: the method's default)", elem_id="invert-steps"
            )
            run = gr.Button("Invert", variant="primary", elem_id="invert-run")
        with gr.Column():
            with gr.Row():
                shown_input = result_image("input", "invert-input")
                shown_vae = result_image("VAE round trip", "invert-vae")
                shown_reconstruction = result_image("reconstruction", "invert-reconstruction")
            stats = gr.Markdown(elem_id="invert-stats")
            download = gr.File(label="inversion file", interactive=False, elem_id="invert-file")
            saved = gr.File(
                label="or load a saved .inv.safetensors", file_types=[".safetensors"], elem_id="invert-load"
            )

    def pick(name: str | None) -> tuple[Image.Image | None, str]:
        if not name:
            return None, ""
        load, text = examples[name]
        return load(), text

    def invert(image, text, method_name, num_steps, request: gr.Request, progress=gr.Progress(track_tqdm=True)):
        source = ctx.check_image(image)
        steps = int(num_steps) if num_steps else None
        inversion = ctx.run(api.invert, ctx.pipe, source, text, method_name, num_inference_steps=steps, progress=True)
        path = ctx.new_path(request, "inversion", ".inv.safetensors")
        inversion.save(path)
        return (*_scores(inversion, source), str(path), str(path))

    def load_saved(file, request: gr.Request, progress=gr.Progress(track_tqdm=True)):
        if file is None:
            raise gr.Error("choose an .inv.safetensors file")
        inversion = ctx.run(Inversion.load, file, ctx.pipe)
        path = ctx.new_path(request, "inversion", ".inv.safetensors")
        inversion.save(path)
        reconstruction = _pil(
            images.decode(ctx.pipe.vae, ctx.run(api.reconstruct, ctx.pipe, inversion, output_type="latent")).cpu()
        )
        return (
            None,
            None,
            reconstruction,
            f"loaded {inversion.method} inversion of “{inversion.settings.prompt}”",
            str(path),
            str(path),
        )

    def _scores(inversion: Inversion, source: Image.Image) -> tuple[Image.Image, Image.Image, Image.Image, str]:
        check = ctx.run(api.check_reconstruction, ctx.pipe, inversion, source)
        psnr = metrics.psnr(check.reconstruction, check.target)
        vae_psnr = metrics.psnr(check.vae_round_trip, check.target)
        text = (
            f"**PSNR {psnr:.2f} dB** vs the photo (VAE round trip {vae_psnr:.2f} dB) · "
            f"{inversion.stats.seconds:.1f} s · {inversion.method}, {inversion.settings.num_inference_steps} steps"
        )
        return _pil(check.target), _pil(check.vae_round_trip), _pil(check.reconstruction), text

    outputs = [shown_input, shown_vae, shown_reconstruction, stats, download, shared.inversion]
    example.change(pick, inputs=example, outputs=[photo, caption])
    run.click(invert, inputs=[photo, caption, method, steps], outputs=outputs)
    saved.upload(load_saved, inputs=saved, outputs=outputs)


TAB = Tab("Invert", build)
