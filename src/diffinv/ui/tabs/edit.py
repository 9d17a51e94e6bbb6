"""Edit tab: prompt-to-prompt on the session's latest inversion (made in the Invert tab or uploaded here; the newest
wins, and the tab shows which one it will edit): target prompt (pre-filled with the source caption), mode, word
weights, local-blend words, negative prompt, cross/self-attention steps → the edit beside the source, and a gallery
of this session's edits."""

from __future__ import annotations

import gradio as gr

from diffinv import api
from diffinv.editing.config import EditConfig
from diffinv.editing.registry import MODES
from diffinv.errors import DiffinvError
from diffinv.inversion import Inversion
from diffinv.parsing import parse_word_weights
from diffinv.ui.context import (
    IMAGE_HEIGHT,
    RESULT_BUTTONS,
    SharedState,
    Tab,
    UIContext,
    cancel_button,
    result_image,
)


def parse_weights(text: str) -> dict[str, float]:
    """``"red=2, circle=0.5"`` → ``{"red": 2.0, "circle": 0.5}`` (:func:`diffinv.parsing.parse_word_weights` over
    the comma-separated items), or a message in the page."""
    try:
        return parse_word_weights(filter(None, (part.strip() for part in text.split(","))))
    except DiffinvError as exc:
        raise gr.Error(f"{exc} (separate several with commas)") from None


def build(ctx: UIContext, shared: SharedState) -> None:
    with gr.Row():
        with gr.Column():
            with gr.Row():
                which_image = result_image("inversion to edit", "edit-which-image")
                which = gr.Markdown(
                    "No inversion yet: invert a photo (Invert tab) or upload one.", elem_id="edit-which"
                )
            upload = gr.File(label="or load an inversion file", file_types=[".safetensors"], elem_id="edit-file")
            target = gr.Textbox(
                label="target prompt (change a word of the caption; Enter edits)", elem_id="edit-target"
            )
            mode = gr.Dropdown(
                choices=list(MODES), value=EditConfig.mode, label="mode", info=MODES[EditConfig.mode].summary
            )
            weights = gr.Textbox(label="word weights (reweight), e.g. red=2", elem_id="edit-weights")
            blend = gr.Textbox(label="local blend words, space-separated", elem_id="edit-blend")
            negative = gr.Textbox(label="negative prompt (free-slot inversions only)")
            cross = gr.Slider(0, 1, value=EditConfig.cross_replace_steps, step=0.05, label="cross-attention steps")
            self_steps = gr.Slider(0, 1, value=EditConfig.self_replace_steps, step=0.05, label="self-attention steps")
            run = gr.Button("Edit", variant="primary", elem_id="edit-run")
            cancel_button(ctx, "edit-cancel")
        with gr.Column():
            with gr.Row():
                source = result_image("source (reconstruction)", "edit-source")
                edited = result_image("edit", "edit-result")
            send = gr.Button("Invert this edit (send to the Invert tab, to edit it further)", elem_id="edit-send")
            history = gr.Gallery(label="this session's edits", columns=4, height=IMAGE_HEIGHT, buttons=RESULT_BUTTONS)
    edits = gr.State([])

    def show(entry):
        if not entry:
            return gr.update(), gr.update(), gr.update()
        return entry["image"], f"Will edit the {entry['label']}.", entry["prompt"]

    def load(file, browser, request: gr.Request, progress=gr.Progress(track_tqdm=True)):
        if file is None:
            return gr.update()
        entry = ctx.load_inversion(file, request)[1]
        ctx.remember(browser, inversion=entry)
        return entry

    def restore(browser):
        inversion, past = ctx.recall(browser)
        return past, past, inversion if inversion is not None else gr.update()

    def sent(entry):
        if not entry:
            raise gr.Error("make an edit first")
        return entry

    def edit(entry, text, mode_name, weight_text, blend_text, negative_prompt, cross_steps, self_fraction,
             past, browser, request: gr.Request, progress=gr.Progress(track_tqdm=True)):  # fmt: skip
        if not entry:
            raise gr.Error("invert a photo first (Invert tab) or upload an inversion file")
        inversion = ctx.run(Inversion.load, entry["path"], ctx.pipe, request=request)
        prompt = text.strip() or inversion.settings.prompt
        settings = {
            "mode": mode_name,
            "reweight": parse_weights(weight_text) or None,
            "local_blend": blend_text.split() or None,
            "cross_replace_steps": float(cross_steps),
            "self_replace_steps": float(self_fraction),
        }
        negative_text = negative_prompt.strip() or None
        result = ctx.run(api.edit, ctx.pipe, inversion, prompt, negative_prompt=negative_text, progress=True,
                         request=request, **settings)  # fmt: skip
        recorded = {"source_prompt": inversion.settings.prompt, "target_prompt": prompt, "inversion": inversion.method,
                    "negative_prompt": negative_text, **settings}  # fmt: skip
        source_png = ctx.save_png(request, f"source-{inversion.method}", result.source[0], recorded)
        edit_png = ctx.save_png(request, f"edit-{inversion.method}", result.edit[0], recorded)
        ctx.remember(browser, edit=(edit_png, prompt))
        past = [*past, (edit_png, prompt)]
        return source_png, edit_png, past, past, {"image": edit_png, "caption": prompt}

    mode.change(lambda name: gr.update(info=MODES[name].summary), inputs=mode, outputs=mode)
    shared.inversion.change(show, inputs=shared.inversion, outputs=[which_image, which, target])
    upload.upload(load, inputs=[upload, shared.browser], outputs=shared.inversion)
    shared.app.load(restore, inputs=shared.browser, outputs=[history, edits, shared.inversion])
    inputs = [shared.inversion, target, mode, weights, blend, negative, cross, self_steps, edits, shared.browser]
    last = gr.State(None)
    outputs = [source, edited, history, edits, last]
    run.click(edit, inputs=inputs, outputs=outputs)
    target.submit(edit, inputs=inputs, outputs=outputs)
    send.click(sent, inputs=last, outputs=shared.to_invert)


TAB = Tab("Edit", build)
