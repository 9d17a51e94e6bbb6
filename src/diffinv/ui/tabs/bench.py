"""Bench tab: a small reconstruction bench (the CLI's ``diffinv bench``, through the same runner) on a few Shapes
scenes or bundled photos, with progress; shows the summary table and the quality-vs-time plot."""

from __future__ import annotations

import gradio as gr

from diffinv.bench.config import DEFAULT_METHODS, BenchConfig
from diffinv.bench.datasets import load_dataset
from diffinv.bench.reconstruction import run_bench
from diffinv.bench.reconstruction_report import write_reconstruction_summary
from diffinv.bench.runner import read_records
from diffinv.inversion.registry import method_names
from diffinv.ui.context import RESULT_BUTTONS, SharedState, Tab, UIContext, cancel_button

MAX_IMAGES = 10


def page_table(summary: str) -> str:
    """The bench summary's table for the page: the columns no metric filled (``unavailable``: weights that are
    not on the server) and the notes below the table, which give command-line options and server paths, left out."""
    rows = [line for line in summary.splitlines() if line.startswith("|")]
    cells = [[cell.strip() for cell in row.strip("|").split("|")] for row in rows]
    if len(cells) < 3:
        return summary
    keep = [j for j in range(len(cells[0])) if any(row[j] != "unavailable" for row in cells[2:])]
    return "\n".join("| " + " | ".join(row[j] for j in keep) + " |" for row in cells)


def build(ctx: UIContext, shared: SharedState) -> None:
    with gr.Row():
        with gr.Column(scale=1):
            dataset = gr.Radio(choices=["shapes", "photos"], value="shapes", label="dataset")
            count = gr.Slider(1, MAX_IMAGES, value=2, step=1, label="images")
            methods = gr.CheckboxGroup(choices=list(method_names()), value=list(DEFAULT_METHODS), label="methods")
            run = gr.Button("Run bench", variant="primary", elem_id="bench-run")
            cancel_button(ctx, "bench-cancel")
        with gr.Column(scale=2):
            table = gr.Markdown(elem_id="bench-table")
            plot = gr.Image(label="quality vs time", interactive=False, elem_id="bench-plot", buttons=RESULT_BUTTONS)

    def bench(name, n, chosen, request: gr.Request, progress=gr.Progress(track_tqdm=True)):
        if not chosen:
            raise gr.Error("pick at least one method")
        n = int(n)
        spec = f"shapes:{n}" if name == "shapes" else "photos"
        samples = ctx.run(load_dataset, spec, limit=n)
        config = ctx.run(BenchConfig, methods=tuple(chosen))
        out = ctx.new_path(request, "bench", "")
        ctx.run(run_bench, ctx.pipe, samples, config, out, request=request)
        ctx.run(write_reconstruction_summary, read_records(out), out)
        return page_table((out / "summary.md").read_text(encoding="utf-8")), str(out / "quality_vs_time.png")

    run.click(bench, inputs=[dataset, count, methods], outputs=[table, plot])


TAB = Tab("Bench", build)
