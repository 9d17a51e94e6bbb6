"""SDEdit tab: paint strokes on a blank canvas or over a photo, optionally a mask (the strokes' region and/or one
painted with the mask brush), pick t0 and repeats → the result, and a strip over several strengths showing SDEdit's
faithfulness–realism trade-off."""

from __future__ import annotations

import gradio as gr
import numpy as np
from PIL import Image

from diffinv import api, images
from diffinv.editing.config import MAX_REPEATS, SDEditConfig
from diffinv.pipelines import default_size
from diffinv.ui.context import (
    IMAGE_HEIGHT,
    RESULT_BUTTONS,
    SharedState,
    Tab,
    UIContext,
    cancel_button,
    result_image,
)

BRUSH_COLORS = ["#e6194b", "#f58231", "#ffe119", "#3cb44b", "#4363d8", "#911eb4", "#ffffff", "#000000"]
STRIP_STRENGTHS = (0.3, 0.5, 0.7, 0.9)
DEFAULTS = SDEditConfig()


def painting(value: dict | None) -> Image.Image:
    """The editor's composite (the guide), or a message in the page when there is none."""
    if not value or value.get("composite") is None:
        raise gr.Error("paint on the canvas first")
    return value["composite"].convert("RGB")


def painted_region(value: dict | None) -> Image.Image | None:
    """Where the editor's layers were painted (their alpha) as a white-on-black mask, or ``None`` if nowhere."""
    layers = [layer for layer in (value or {}).get("layers") or [] if layer is not None]
    if not layers:
        return None
    alpha = np.zeros((layers[0].height, layers[0].width), dtype=bool)
    for layer in layers:
        alpha |= np.asarray(layer.convert("RGBA"))[..., 3] > 0
    return Image.fromarray(alpha.astype(np.uint8) * 255) if alpha.any() else None


def union(*masks: Image.Image | None) -> Image.Image | None:
    """The union of the given masks (``None`` ones skipped), at the first one's size."""
    present = [m for m in masks if m is not None]
    if not present:
        return None
    size = present[0].size
    union_mask = np.zeros(size[::-1], dtype=bool)
    for mask in present:
        union_mask |= np.asarray(mask.convert("L").resize(size)) > 127
    return Image.fromarray(union_mask.astype(np.uint8) * 255)


def build(ctx: UIContext, shared: SharedState) -> None:
    height, width = default_size(ctx.pipe)
    with gr.Row():
        with gr.Column():
            canvas = gr.ImageEditor(
                value=Image.new("RGB", (width, height), "white"),
                type="pil",
                label="strokes: pick the brush and paint (on the white canvas, or upload a photo first)",
                canvas_size=(width, height),
                brush=gr.Brush(
                    colors=BRUSH_COLORS,
                    default_color=BRUSH_COLORS[0],
                    color_mode="fixed",
                    default_size=max(2, width // 16),
                ),
                elem_id="sdedit-canvas",
            )
            with gr.Accordion("mask (optional): where the result may change", open=False):
                masked = gr.Checkbox(label="where the strokes are", value=False, elem_id="sdedit-stroke-mask")
                mask_canvas = gr.ImageEditor(
                    value=Image.new("RGB", (width, height), "black"),
                    type="pil",
                    label="and/or paint the region with the mask brush (upload the photo here to see it)",
                    canvas_size=(width, height),
                    brush=gr.Brush(colors=["#ffffff"], color_mode="fixed", default_size=max(2, width // 8)),
                    elem_id="sdedit-mask",
                )
            prompt = gr.Textbox(label="prompt", elem_id="sdedit-prompt")
            strength = gr.Slider(0.05, 1.0, value=DEFAULTS.strength, step=0.05, label="strength t0")
            repeats = gr.Slider(1, min(5, MAX_REPEATS), value=DEFAULTS.repeats, step=1, label="repeats K")
            seed = gr.Number(value=0, precision=0, minimum=0, label="seed")
            with gr.Row():
                run = gr.Button("SDEdit", variant="primary", elem_id="sdedit-run")
                strip = gr.Button("Strip over strengths", elem_id="sdedit-strip")
                cancel_button(ctx, "sdedit-cancel")
        with gr.Column():
            result = result_image("result", "sdedit-result")
            gallery = gr.Gallery(
                label="t0 = " + ", ".join(f"{t:g}" for t in STRIP_STRENGTHS),
                columns=4,
                height=IMAGE_HEIGHT,
                elem_id="sdedit-strip-gallery",
                buttons=RESULT_BUTTONS,
            )

    def edit(value, mask_value, text, use_strokes, t0, k, number, strengths, request):
        guide = ctx.check_image(painting(value), "painting")
        if not text.strip():
            raise gr.Error("write the prompt: what the painting should become")
        if np.ptp(np.asarray(guide)) == 0:
            raise gr.Error("the canvas is blank: paint strokes on it or upload a photo first")
        mask = union(painted_region(value) if use_strokes else None, painted_region(mask_value))
        ctx.generator(number)  # a bad seed is refused before any work
        seed_value = int(number or 0)
        results = []
        for t in strengths:
            image = ctx.run(api.sdedit, ctx.pipe, guide, text, strength=float(t), mask=mask, repeats=int(k),
                            generator=ctx.generator(seed_value), progress=True,
                            request=request)[0]  # fmt: skip
            settings = {"prompt": text, "strength": float(t), "repeats": int(k), "seed": seed_value,
                        "masked": mask is not None}  # fmt: skip
            results.append(ctx.save_png(request, f"sdedit-t0-{t:g}", image, settings))
        return results

    def one(value, mask_value, text, use_strokes, t0, k, number, request: gr.Request,
            progress=gr.Progress(track_tqdm=True)):  # fmt: skip
        return edit(value, mask_value, text, use_strokes, t0, k, number, (t0,), request)[0]

    def several(value, mask_value, text, use_strokes, t0, k, number, request: gr.Request,
                progress=gr.Progress(track_tqdm=True)):  # fmt: skip
        outputs = edit(value, mask_value, text, use_strokes, t0, k, number, STRIP_STRENGTHS, request)
        return [(image, f"t0 = {t:g}") for image, t in zip(outputs, STRIP_STRENGTHS, strict=True)]

    def received(entry):
        if not entry:
            return gr.update(), gr.update()
        image = images.open_image(entry["image"]).resize((width, height))
        gr.Info("the picture is on the SDEdit canvas: paint over it and press SDEdit")
        return {"background": image, "layers": [], "composite": image}, entry["caption"]

    shared.to_sdedit.change(received, inputs=shared.to_sdedit, outputs=[canvas, prompt])
    inputs = [canvas, mask_canvas, prompt, masked, strength, repeats, seed]
    run.click(one, inputs=inputs, outputs=result)
    strip.click(several, inputs=inputs, outputs=gallery)


TAB = Tab("SDEdit", build)
