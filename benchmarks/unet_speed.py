"""Generation speed of candidate UNet architectures for the built-in model, beside v1's, in one process.

Builds each candidate with :func:`diffinv.train.unet.build_unet` (random weights: speed does not depend on them),
puts it into the shipped ``mini`` pipeline in place of v1's UNet and measures, with one torch thread:

* ms per UNet forward at batch 2 (the classifier-free-guidance batch) on 4 x 16 x 16 latents;
* seconds per 50-step guided 64-px image with :func:`diffinv.api.generate` (text encoding, 50 steps, decoding).

The candidates are measured in interleaved rounds (every candidate once per round) and each figure is the median
over the rounds, so a slower spell of a shared machine hits every candidate alike and the ratio to v1 stays
honest. Prints a table and, as its last line, one JSON object.

    python benchmarks/unet_speed.py [--rounds 5] [--forwards 30] [--steps 50]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import asdict

os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("DIFFUSERS_VERBOSITY", "error")

import torch  # noqa: E402
from diffusers import UNet2DConditionModel  # noqa: E402

from diffinv.api import generate  # noqa: E402
from diffinv.loop.common import n_params  # noqa: E402
from diffinv.pipelines import load_pipeline  # noqa: E402
from diffinv.train.mini import PRESETS  # noqa: E402
from diffinv.train.unet import UNetModelConfig, build_unet  # noqa: E402

PROMPT = "a small pink star at the top left and a large orange square in the center, on a white background"
TWO_LEVELS = {
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D"),
    "up_block_types": ("CrossAttnUpBlock2D", "UpBlock2D"),
}
ATTN_8 = {
    "down_block_types": ("DownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
    "up_block_types": ("UpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
}
CANDIDATES: dict[str, UNetModelConfig] = {
    "v1": PRESETS["v1"]().unet.model,
    "v2": PRESETS["v2"]().unet.model,
    "2lvl-32/64": UNetModelConfig(block_out_channels=(32, 64), **TWO_LEVELS),
    "2lvl-32/64-depth2": UNetModelConfig(block_out_channels=(32, 64), transformer_layers_per_block=2, **TWO_LEVELS),
    "2lvl-32/64-lpb2": UNetModelConfig(block_out_channels=(32, 64), layers_per_block=2, **TWO_LEVELS),
    "2lvl-32/80": UNetModelConfig(block_out_channels=(32, 80), **TWO_LEVELS),
    "2lvl-32/96": UNetModelConfig(block_out_channels=(32, 96), **TWO_LEVELS),
    "2lvl-64/128": UNetModelConfig(block_out_channels=(64, 128), **TWO_LEVELS),
    "3lvl-32/64/128-attn8": UNetModelConfig(**ATTN_8),
    "3lvl-16/64/128-attn8": UNetModelConfig(block_out_channels=(16, 64, 128), **ATTN_8),
}
"""Named architectures; ``v1`` and ``v2`` are the presets of :mod:`diffinv.train.mini` (the candidate ``v2`` picks
appears twice when it is one of the others)."""


def build(config: UNetModelConfig, like: UNet2DConditionModel) -> UNet2DConditionModel:
    """A randomly initialised UNet of ``config`` with the latent and text sizes of ``like`` (eval mode)."""
    torch.manual_seed(0)
    unet = build_unet(config, like.config.in_channels, like.config.sample_size, like.config.cross_attention_dim)
    return unet.eval()


@torch.inference_mode()
def forward_ms(unet: UNet2DConditionModel, forwards: int, context: int) -> float:
    """Mean ms per forward at batch 2 (after two warm-up calls)."""
    cfg = unet.config
    latents = torch.randn(2, cfg.in_channels, cfg.sample_size, cfg.sample_size)
    text = torch.randn(2, context, cfg.cross_attention_dim)
    timestep = torch.tensor([500, 500])
    for _ in range(2):
        unet(latents, timestep, encoder_hidden_states=text)
    started = time.perf_counter()
    for _ in range(forwards):
        unet(latents, timestep, encoder_hidden_states=text)
    return (time.perf_counter() - started) / forwards * 1000.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="interleaved measurement rounds (median reported)")
    parser.add_argument("--forwards", type=int, default=30, help="UNet forwards per candidate and round")
    parser.add_argument("--steps", type=int, default=50, help="DDIM steps per generated image")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    pipe = load_pipeline("mini")
    context = pipe.tokenizer.model_max_length
    unets = {name: build(config, pipe.unet) for name, config in CANDIDATES.items()}
    forwards: dict[str, list[float]] = {name: [] for name in unets}
    images: dict[str, list[float]] = {name: [] for name in unets}
    for _ in range(args.rounds):
        for name, unet in unets.items():
            forwards[name].append(forward_ms(unet, args.forwards, context))
            pipe.unet = unet
            generate(pipe, PROMPT, num_inference_steps=2, output_type="np")  # warm-up
            started = time.perf_counter()
            generate(pipe, PROMPT, num_inference_steps=args.steps, generator=torch.Generator().manual_seed(0))
            images[name].append(time.perf_counter() - started)
    rows = []
    base = statistics.median(images["v1"])
    for name, unet in unets.items():
        seconds = statistics.median(images[name])
        rows.append(
            {
                "name": name,
                "params": n_params(unet),
                "ms_per_forward_b2": round(statistics.median(forwards[name]), 2),
                "s_per_image": round(seconds, 3),
                "ratio_to_v1": round(seconds / base, 3),
                "config": asdict(CANDIDATES[name]),
            }
        )
    print(f"{args.steps}-step guided 64-px generation, {args.threads} thread(s), median of {args.rounds} rounds")
    print("| UNet | params | ms / forward (batch 2) | s / image | × v1 |")
    print("|---|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['name']} | {r['params'] / 1e6:.2f} M | {r['ms_per_forward_b2']:.1f} | {r['s_per_image']:.3f} | "
            f"{r['ratio_to_v1']:.2f} |"
        )
    print(json.dumps({"threads": args.threads, "steps": args.steps, "rounds": args.rounds, "rows": rows}))


if __name__ == "__main__":
    main()
