"""Generate tab: a prompt (and negative prompt), steps, guidance and seed → an image from the model, with the same
sampler the inversions use; "Invert this" sends it with its prompt to the Invert tab."""

from __future__ import annotations

import gradio as gr

from diffinv import api
from diffinv.config import SamplingConfig
from diffinv.ui.context import SharedState, Tab, UIContext, cancel_button, result_image

DEFAULTS = SamplingConfig()
MAX_STEPS = 200
MAX_SLIDER_GUIDANCE = 30.0  # the range people use; the library takes up to MAX_GUIDANCE_SCALE


def build(ctx: UIContext, shared: SharedState) -> None:
    with gr.Row():
        with gr.Column():
            prompt = gr.Textbox(
                label="prompt (Enter generates)", elem_id="generate-prompt", info=ctx.caption_help or None
            )
            negative = gr.Textbox(label="negative prompt (optional)", elem_id="generate-negative")
            steps = gr.Slider(
                1, MAX_STEPS, value=DEFAULTS.num_inference_steps, step=1, label="steps", elem_id="generate-steps"
            )
            guidance = gr.Slider(
                0, MAX_SLIDER_GUIDANCE, value=DEFAULTS.guidance_scale, step=0.5, label="guidance scale"
            )
            seed = gr.Number(value=0, precision=0, minimum=0, label="seed", elem_id="generate-seed")
            run = gr.Button("Generate", variant="primary", elem_id="generate-run")
            cancel_button(ctx, "generate-cancel")
        with gr.Column():
            image = result_image("image", "generate-result")
            send = gr.Button("Invert this (send to the Invert tab)", elem_id="generate-send")
    last = gr.State(None)

    def generate(text, negative_text, num_steps, scale, number, request: gr.Request,
                 progress=gr.Progress(track_tqdm=True)):  # fmt: skip
        if not text.strip():
            raise gr.Error("write a prompt first")
        generator = ctx.generator(number)
        picture = ctx.run(api.generate, ctx.pipe, text, negative_prompt=negative_text.strip() or None,
                          num_inference_steps=int(num_steps), guidance_scale=float(scale), generator=generator,
                          progress=True, request=request)[0]  # fmt: skip
        settings = {"prompt": text, "negative_prompt": negative_text.strip() or None, "steps": int(num_steps),
                    "guidance_scale": float(scale), "seed": int(number or 0)}  # fmt: skip
        path = ctx.save_png(request, "generated", picture, settings)
        return path, {"image": path, "caption": text}

    def send_on(entry):
        if not entry:
            raise gr.Error("generate an image first")
        return entry

    inputs = [prompt, negative, steps, guidance, seed]
    run.click(generate, inputs=inputs, outputs=[image, last])
    prompt.submit(generate, inputs=inputs, outputs=[image, last])
    send.click(send_on, inputs=last, outputs=shared.to_invert)


TAB = Tab("Generate", build)
