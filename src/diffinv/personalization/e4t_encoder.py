"""The E4T domain encoder (Gal et al. 2023, "Encoder-based Domain Tuning for Fast Personalization"), its file, and
the per-prompt weight offsets it predicts.

From one image of a concept the encoder predicts (a) an offset Δw of the concept word's embedding from the class
word's, w = e_class + Δw, and (b) low-rank offsets of the UNet's cross-attention key and value projections,
ΔW_l = B_l · diag(c_l) · A_l: the bases A_l ``(r, in)`` and B_l ``(out, r)`` are learned once for the domain, the
coefficients c_l ``(r,)`` per image. One concept's offsets are peft LoRA pairs (``lora_A`` = diag(c_l)·A_l,
``lora_B`` = B_l), so a predicted concept loads like any LoRA; during pre-training, where every prompt of a batch
has its own concept, forward hooks on the projections add each prompt's offsets (:func:`per_prompt_offsets`).

The layers are found from the UNet's structure (every attention module flagged ``is_cross_attention``), so an
encoder can be trained for any Stable Diffusion UNet; a file records the model it was trained for.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from diffusers import UNet2DConditionModel
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from diffinv.config import Config, setting
from diffinv.errors import DiffinvError, check_integer, first_line
from diffinv.io import atomic_write
from diffinv.pipelines import ModelFingerprint

ENCODER_FILE = "encoder.safetensors"
CONFIG_FILE = "config.json"
PROJECTIONS = ("to_k", "to_v")


@dataclass(frozen=True)
class EncoderConfig(Config):
    """The encoder's architecture (a small CNN: stride-2 convolutions, global pooling, two linear heads)."""

    image_size: int = setting(64, "the encoder's input side in pixels")
    channels: tuple[int, ...] = setting((32, 64, 128, 128), "conv widths, one per halving")
    rank: int = setting(4, "rank r of each layer's weight offsets")
    class_word: str = setting("circle", "the domain's class word (one token)")

    def __post_init__(self) -> None:
        check_integer("image_size", self.image_size, minimum=8, maximum=1024)
        check_integer("rank", self.rank, minimum=1, maximum=256)
        if not self.channels or any(not isinstance(c, int) or c < 1 for c in self.channels):
            raise DiffinvError("channels must be positive integers")
        if not isinstance(self.class_word, str) or not self.class_word.strip():
            raise DiffinvError("class_word must be a word")


def offset_layers(unet: UNet2DConditionModel) -> list[tuple[str, int, int]]:
    """``(module name, in_features, out_features)`` of the key and value projections of every cross-attention
    module of ``unet`` (the layers E4T adapts), in module order."""
    layers = []
    for name, module in unet.named_modules():
        if getattr(module, "is_cross_attention", False):
            for projection in PROJECTIONS:
                linear = getattr(module, projection)
                layers.append((f"{name}.{projection}", linear.in_features, linear.out_features))
    if not layers:
        raise DiffinvError("this UNet has no cross-attention layers to adapt")
    return layers


class E4TEncoder(nn.Module):
    """Image ``(B, 3, S, S)`` in [-1, 1] → word offsets ``(B, D)`` and offset coefficients ``(B, layers, r)``."""

    def __init__(self, config: EncoderConfig, layers: list[tuple[str, int, int]], embed_dim: int) -> None:
        super().__init__()
        self.config = config
        self.layers = layers
        blocks: list[nn.Module] = []
        width = 3
        for channels in config.channels:
            blocks += [nn.Conv2d(width, channels, 3, stride=2, padding=1), nn.GroupNorm(8, channels), nn.SiLU()]
            width = channels
        self.backbone = nn.Sequential(*blocks, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.word = nn.Linear(width, embed_dim)
        self.coefficients = nn.Linear(width, len(layers) * config.rank)
        for head in (self.word, self.coefficients):
            nn.init.zeros_(head.weight)
            nn.init.zeros_(head.bias)
        rank = config.rank
        self.down = nn.ParameterList([nn.Parameter(torch.randn(rank, i) / i**0.5) for _, i, _ in layers])
        self.up = nn.ParameterList([nn.Parameter(torch.randn(o, rank) * 0.01) for _, _, o in layers])

    def forward(self, pixels: Tensor) -> tuple[Tensor, Tensor]:
        size = self.config.image_size
        if pixels.shape[-2:] != (size, size):
            pixels = nn.functional.interpolate(pixels, size=(size, size), mode="bilinear", antialias=True)
        features = self.backbone(pixels)
        coefficients = self.coefficients(features).view(pixels.shape[0], len(self.layers), self.config.rank)
        return self.word(features), coefficients

    def lora(self, coefficients: Tensor) -> dict[str, Tensor]:
        """One concept's offsets ``coefficients`` ``(layers, r)`` as peft LoRA pairs (scale 1)."""
        pairs = {}
        for j, (name, _, _) in enumerate(self.layers):
            pairs[f"{name}.lora_A.weight"] = coefficients[j].unsqueeze(1) * self.down[j]
            pairs[f"{name}.lora_B.weight"] = self.up[j]
        return pairs

    def save(self, folder: str | Path, model: ModelFingerprint, trained: dict[str, Any]) -> Path:
        """Write ``folder/encoder.safetensors`` and ``folder/config.json`` (architecture, layers, the model's
        fingerprint and how it was trained), atomically."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        config = {
            "encoder": self.config.to_dict(),
            "layers": [list(layer) for layer in self.layers],
            "embed_dim": self.word.out_features,
            "model_fingerprint": model.to_dict(),
            "trained": trained,
        }
        tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in self.state_dict().items()}
        atomic_write(folder / ENCODER_FILE, lambda tmp: save_file(tensors, str(tmp)))
        atomic_write(folder / CONFIG_FILE, lambda tmp: tmp.write_text(json.dumps(config, indent=2) + "\n"))
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> tuple[E4TEncoder, ModelFingerprint]:
        """Read an encoder folder; raises :class:`DiffinvError` for a missing, unreadable or inconsistent one."""
        folder = Path(folder)
        try:
            config = json.loads((folder / CONFIG_FILE).read_text())
            encoder_config = EncoderConfig.from_dict(config["encoder"], "encoder")
            layers = [(str(n), int(i), int(o)) for n, i, o in config["layers"]]
            model = ModelFingerprint.from_dict(config["model_fingerprint"])
            encoder = cls(encoder_config, layers, int(config["embed_dim"]))
            encoder.load_state_dict(load_file(str(folder / ENCODER_FILE)))
        except (OSError, SafetensorError) as exc:
            raise DiffinvError(f"{folder}: no readable E4T encoder ({exc})") from None
        except (KeyError, TypeError, ValueError, RuntimeError) as exc:
            raise DiffinvError(f"{folder}: not an E4T encoder folder ({first_line(exc)})") from None
        return encoder.eval(), model


@contextlib.contextmanager
def per_prompt_offsets(unet: UNet2DConditionModel, encoder: E4TEncoder, coefficients: Tensor) -> Iterator[None]:
    """While the block runs, layer ``l``'s output for prompt ``b`` of a batch gains ``x·(diag(c_bl)·A_l)ᵀ·B_lᵀ``
    (forward hooks, removed afterwards): prompt ``b`` sees the UNet with its own concept's LoRA offsets.
    ``coefficients`` ``(B, layers, r)``; the batch must be the prompts' (no classifier-free doubling)."""
    handles = []

    def make_hook(j: int) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], output: Tensor) -> Tensor:
            x = args[0]
            low = (x @ encoder.down[j].t().to(x)) * coefficients[:, j].to(x).unsqueeze(1)
            return output + low @ encoder.up[j].t().to(x)

        return hook

    try:
        for j, (name, _, _) in enumerate(encoder.layers):
            handles.append(unet.get_submodule(name).register_forward_hook(make_hook(j)))
        yield
    finally:
        for handle in handles:
            handle.remove()
