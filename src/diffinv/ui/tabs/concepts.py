"""Concepts tab: learn a new word from 1–5 shots (textual inversion, E4T or LoRA) or load a concept file; the
session's concepts then work in every tab's prompts (Invert, Edit, SDEdit, Generate): each call loads them into the
shared model for its own duration (:meth:`~diffinv.ui.context.UIContext.run`)."""

from __future__ import annotations

import gradio as gr

from diffinv import api
from diffinv.errors import DiffinvError
from diffinv.personalization import read_concept
from diffinv.personalization.registry import DEFAULT_METHOD, METHOD_CONFIGS
from diffinv.ui.context import SharedState, Tab, UIContext, cancel_button

MAX_SHOTS = 5


def build(ctx: UIContext, shared: SharedState) -> None:
    with gr.Row():
        with gr.Column():
            shots = gr.File(
                label=f"1–{MAX_SHOTS} photos of the concept", file_count="multiple", file_types=["image"],
                elem_id="concepts-shots",
            )  # fmt: skip
            token = gr.Textbox(value="<my-thing>", label="new word (token), e.g. <my-toy>", elem_id="concepts-token")
            init_word = gr.Textbox(
                label="what it is, in one existing word (the class word: toy, cat, moon)", elem_id="concepts-init"
            )
            method = gr.Dropdown(choices=list(METHOD_CONFIGS), value=DEFAULT_METHOD, label="method")
            steps = gr.Number(
                value=0, precision=0, minimum=0, label="steps (0: the method's default)", elem_id="concepts-steps"
            )
            run = gr.Button("Learn", variant="primary", elem_id="concepts-run")
            cancel_button(ctx, "concepts-cancel")
        with gr.Column():
            used = gr.Markdown("No concepts yet.", elem_id="concepts-used")
            learned = gr.File(label="the learned concept (.safetensors)", interactive=False, elem_id="concepts-file")
            upload = gr.File(label="or load a concept file", file_types=[".safetensors"], elem_id="concepts-load")

    def listing(request: gr.Request) -> str:
        tokens = [concept.token for concept in ctx.concepts(request)]
        if not tokens:
            return "No concepts yet."
        return "Concepts in use in every tab's prompts: " + ", ".join(f"`{t}`" for t in tokens)

    def learn(files, word, init, method_name, num_steps, request: gr.Request,
              progress=gr.Progress(track_tqdm=True)):  # fmt: skip
        if not files:
            raise gr.Error("upload 1 to 5 photos of the concept first")
        if len(files) > MAX_SHOTS:
            raise gr.Error(f"{len(files)} photos: learn from at most {MAX_SHOTS}")
        if not init.strip() and method_name != "e4t":
            raise gr.Error("say what it is in one existing word (the class word, e.g. toy)")
        photos = [ctx.read_upload(path, "photo") for path in files]
        steps_value = int(num_steps) if num_steps else None
        class_word = init.strip() or "object"  # e4t learns no word vector: any word serves
        concept = ctx.run(api.learn_concept, ctx.pipe, photos, word.strip(), class_word,
                          method=method_name, steps=steps_value, progress=True, request=request,
                          exclusive=True)  # fmt: skip
        ctx.add_concept(request, concept)
        path = ctx.new_path(request, concept.token.strip("<>") or "concept", ".safetensors")
        concept.save(path)
        return str(path), listing(request)

    def load(file, request: gr.Request):
        if file is None:
            return gr.update()
        try:
            concept = read_concept(file)
        except DiffinvError as exc:
            raise gr.Error(str(exc).replace(str(file), "the concept file")) from None
        ctx.add_concept(request, concept)
        return listing(request)

    run.click(learn, inputs=[shots, token, init_word, method, steps], outputs=[learned, used])
    upload.upload(load, inputs=upload, outputs=used)


TAB = Tab("Concepts", build)
