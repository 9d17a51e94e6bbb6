"""Stage 4 of the mini training (:mod:`diffinv.train.mini`): write the diffusers pipeline folder.

A :class:`~diffusers.StableDiffusionPipeline` of the exported EMA parts (fp16 safetensors, DDIM scheduler with SD's
schedule) with :data:`TRAINING_RECORD` (the config and the stages' final states).
"""

from __future__ import annotations

import json
import shutil
from importlib import resources
from pathlib import Path
from typing import Any, Final

import torch
from diffusers import StableDiffusionPipeline

from diffinv.loop.common import write_json
from diffinv.train.config import MiniConfig
from diffinv.train.parts import load_parts, scheduler

TRAINING_RECORD: Final[str] = "training.json"
"""File the assembled pipeline folder carries: the config and the stages' final states."""


def default_output() -> Path:
    """Where ``assemble`` writes by default: the package's ``assets/models/mini``."""
    return Path(str(resources.files("diffinv"))) / "assets" / "models" / "mini"


def assemble(config: MiniConfig, work: Path, out: Path | None = None) -> Path:
    """Stage 4: write the diffusers ``StableDiffusionPipeline`` folder (fp16 safetensors) to ``out``.

    The folder is written beside ``out`` and swapped in at the end; it also carries :data:`TRAINING_RECORD`.
    """
    out = Path(out) if out is not None else default_output()
    parts = load_parts(work)
    pipe = StableDiffusionPipeline(
        vae=parts.vae,
        text_encoder=parts.text_encoder,
        tokenizer=parts.tokenizer,
        unet=parts.unet,
        scheduler=scheduler(),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.to(torch.float16)
    staging = out.with_name(out.name + ".tmp")
    if staging.exists():
        shutil.rmtree(staging)
    pipe.save_pretrained(staging, safe_serialization=True)
    record: dict[str, Any] = {"config": config.to_dict()}
    for stage, name in (("vae", "eval.json"), ("unet", "state.json")):
        path = work / stage / name
        if path.is_file():
            record[stage] = json.loads(path.read_text())
    write_json(staging / TRAINING_RECORD, record)
    if out.exists():
        shutil.rmtree(out)
    staging.rename(out)
    size = weights_megabytes(out)
    print(f"assemble: wrote {out} ({size:.2f} MB of safetensors)")
    return out


def weights_megabytes(folder: Path) -> float:
    """Total size of the ``.safetensors`` files under ``folder``, in MB (10^6 bytes)."""
    return sum(p.stat().st_size for p in Path(folder).rglob("*.safetensors")) / 1e6
