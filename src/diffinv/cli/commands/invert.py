"""``diffinv invert``: invert a photo into an ``.inv.safetensors`` file."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from diffinv.cli.options import (
    Command,
    add_config_options,
    add_json_option,
    add_model_options,
    add_output_options,
    check_output,
    config_values,
    count,
    load_model,
)
from diffinv.inversion.config import InversionConfig, OptimizationConfig, OptimizingInversionConfig
from diffinv.inversion.registry import DEFAULT_METHOD, METHODS, method_names


def build(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("image", type=Path, help="photo to invert (any format Pillow reads)")
    parser.add_argument("--prompt", required=True, help="caption of the photo")
    parser.add_argument(
        "--method",
        default=DEFAULT_METHOD,
        choices=method_names(),
        help=f"default: {DEFAULT_METHOD}; NAME@paper is the setting of the method's paper. "
        + " ".join(f"{name}: {method.summary}." for name, method in METHODS.items()),
    )
    parser.add_argument("--height", type=count(1), default=None, help="pixels (default: the model's native size)")
    parser.add_argument("--width", type=count(1), default=None, help="pixels (default: the model's native size)")
    parser.add_argument("--strict", action="store_true", help="refuse prompts longer than the text encoder's limit")
    add_output_options(parser, "default: IMAGE_STEM.inv.safetensors in the current folder", required=False)
    add_json_option(parser, "print one JSON object with the results and scores")
    parser.add_argument(
        "--report", action="store_true", help="reconstruct once and print its PSNR against the photo and latent MSE"
    )
    defaults = {name: method.config_class() for name, method in METHODS.items()}
    add_config_options(parser, InversionConfig, "inversion (every method)", defaults=defaults)
    optimizing = {name: c.optimization for name, c in defaults.items() if isinstance(c, OptimizingInversionConfig)}
    add_config_options(parser, OptimizationConfig, f"optimisation ({', '.join(optimizing)})", defaults=optimizing)
    shown = {InversionConfig, OptimizingInversionConfig}
    for name, method in METHODS.items():
        if method.config_class not in shown:
            shown.add(method.config_class)
            add_config_options(parser, method.config_class, f"--method {name} only", skip=OptimizingInversionConfig)
    add_model_options(parser)


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    """Every inversion setting given on the command line (the method's config fields and the optimiser's)."""
    classes = {OptimizationConfig, *(method.config_class for method in METHODS.values())}
    return {key: value for cls in classes for key, value in config_values(args, cls).items()}


def run(args: argparse.Namespace) -> dict[str, Any]:
    from diffinv import api, images, metrics
    from diffinv.inversion.registry import method_config

    config = method_config(args.method, **_settings(args))
    output = check_output(args, args.output or Path(args.image.stem + ".inv.safetensors"), args.image)
    image = images.open_image(args.image)  # validate the photo before loading any model
    pipe = load_model(args)
    inversion = api.invert(
        pipe,
        image,
        args.prompt,
        args.method,
        config=config,
        strict=args.strict,
        height=args.height,
        width=args.width,
        progress=not args.json,
    )
    inversion.save(output)
    result: dict[str, Any] = {
        "method": inversion.method,
        "seconds": round(inversion.stats.seconds, 3),
        "optimized_params": inversion.stats.optimized_params,
        "num_inference_steps": inversion.settings.num_inference_steps,
        "unet_passes": inversion.stats.unet_passes,
        "output": str(output),
    }
    if args.json or args.report:  # the reconstruction costs a sampling run: only when its scores are asked for
        check = api.check_reconstruction(pipe, inversion, image)
        result["psnr_vs_input"] = round(metrics.psnr(check.reconstruction, check.target), 3)
        result["latent_mse"] = metrics.latent_mse(check.latents, inversion.source_latents)
    if args.report and not args.json:
        print(
            f"{result['method']}: {result['seconds']} s, {result['unet_passes']} UNet passes; reconstruction "
            f"PSNR {result['psnr_vs_input']} dB vs the photo, latent MSE {result['latent_mse']:.3g}"
        )
    return result


COMMAND = Command(help="invert a photo into an .inv.safetensors file", build=build, run=run)
