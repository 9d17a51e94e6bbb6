"""The parts of a trained mini pipeline (:mod:`diffinv.train.mini`): the EMA models the stages export, and the
noise schedule the UNet trains on and the assembled pipeline samples with."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from diffusers import AutoencoderKL, DDIMScheduler, UNet2DConditionModel
from transformers import CLIPTextModel, CLIPTokenizer

from diffinv.errors import DiffinvError
from diffinv.loop.common import FINAL
from diffinv.testing import SD_SCHEDULER_CONFIG
from diffinv.train.vae import load_final_vae


def scheduler() -> DDIMScheduler:
    """DDIM with Stable Diffusion's training schedule (scaled-linear β from 0.00085 to 0.012), ε-prediction."""
    return DDIMScheduler(**SD_SCHEDULER_CONFIG, prediction_type="epsilon")


@dataclass
class Parts:
    """The pieces of a pipeline the evaluations need (all in eval mode)."""

    vae: AutoencoderKL
    text_encoder: CLIPTextModel
    tokenizer: CLIPTokenizer
    unet: UNet2DConditionModel


def load_parts(work: Path) -> Parts:
    """The exported EMA models of the ``vae`` and ``unet`` stages (eval mode)."""
    final = work / "unet" / FINAL
    if not (final / "unet" / "config.json").is_file():
        raise DiffinvError(f"{final}: no trained UNet; run the unet stage first")
    return Parts(
        vae=load_final_vae(work),
        text_encoder=CLIPTextModel.from_pretrained(final / "text_encoder").eval(),
        tokenizer=CLIPTokenizer.from_pretrained(final / "tokenizer"),
        unet=UNet2DConditionModel.from_pretrained(final / "unet").eval(),
    )
