"""Edit tab: prompt-to-prompt on the session's latest inversion (or an uploaded one): target prompt, mode, word
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
from diffinv.ui.context import IMAGE_HEIGHT, SharedState, Tab, UIContext, result_image


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
            gr.Markdown("Edits the latest inversion of this session (Invert tab), or upload one here.")
            upload = gr.File(label="inversion file (optional)", file_types=[".safetensors"], elem_id="edit-file")
            target = gr.Textbox(label="target prompt (empty: the source prompt)", elem_id="edit-target")
            mode = gr.Dropdown(choices=list(MODES), value=EditConfig.mode, label="mode")
            weights = gr.Textbox(label="word weights (reweight), e.g. red=2", elem_id="edit-weights")
            blend = gr.Textbox(label="local blend words, space-separated", elem_id="edit-blend")
            negative = gr.Textbox(label="negative prompt (free-slot inversions only)")
            cross = gr.Slider(0, 1, value=EditConfig.cross_replace_steps, step=0.05, label="cross-attention steps")
            self_steps = gr.Slider(0, 1, value=EditConfig.self_replace_steps, step=0.05, label="self-attention steps")
            run = gr.Button("Edit", variant="primary", elem_id="edit-run")
        with gr.Column():
            with gr.Row():
                source = result_image("source (reconstruction)", "edit-source")
                edited = result_image("edit", "edit-result")
            history = gr.Gallery(label="this session's edits", columns=4, height=IMAGE_HEIGHT)
    edits = gr.State([])

    def edit(file, latest, text, mode_name, weight_text, blend_text, negative_prompt, cross_steps, self_fraction,
             past, progress=gr.Progress(track_tqdm=True)):  # fmt: skip
        path = file or latest
        if not path:
            raise gr.Error("invert a photo first (Invert tab) or upload an inversion file")
        inversion = ctx.run(Inversion.load, path, ctx.pipe)
        result = ctx.run(
            api.edit,
            ctx.pipe,
            inversion,
            text.strip() or inversion.settings.prompt,
            mode=mode_name,
            reweight=parse_weights(weight_text) or None,
            local_blend=blend_text.split() or None,
            negative_prompt=negative_prompt.strip() or None,
            cross_replace_steps=float(cross_steps),
            self_replace_steps=float(self_fraction),
            progress=True,
        )
        past = [*past, (result.edit[0], text.strip() or inversion.settings.prompt)]
        return result.source[0], result.edit[0], past, past

    inputs = [upload, shared.inversion, target, mode, weights, blend, negative, cross, self_steps, edits]
    run.click(edit, inputs=inputs, outputs=[source, edited, history, edits])


TAB = Tab("Edit", build)
