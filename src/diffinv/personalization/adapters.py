"""A LoRA adapter added to the UNet for one learning run (diffusers' public ``add_adapter``, peft underneath) and
its parameters as one module for checkpoints; shared by the LoRA and E4T methods."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

from diffusers import UNet2DConditionModel
from torch import Tensor, nn

ADAPTER = "diffinv-learning"


@contextlib.contextmanager
def lora_adapter(unet: UNet2DConditionModel, rank: int, targets: Sequence[str]) -> Iterator[dict[str, Tensor]]:
    """A fresh LoRA adapter of ``rank`` on ``targets`` for the block; yields its parameters by peft's state-dict
    names. Afterwards the adapter is gone: the UNet's layers are plain again if it had no adapter before."""
    from peft import LoraConfig

    had_adapters = bool(getattr(unet, "peft_config", None))
    unet.add_adapter(
        LoraConfig(r=rank, lora_alpha=rank, init_lora_weights="gaussian", target_modules=list(targets)),
        adapter_name=ADAPTER,
    )
    marker = f".{ADAPTER}."
    params = {name.replace(marker, "."): p for name, p in unet.named_parameters() if marker in name}
    try:
        yield params
    finally:
        if had_adapters:
            unet.delete_adapters(ADAPTER)
        else:
            unet.unload_lora()


class Offsets(nn.Module):
    """The adapter's parameters as one module (what checkpoints hold; the same tensors, not copies)."""

    def __init__(self, params: dict[str, Tensor]) -> None:
        super().__init__()
        self.offsets = nn.ParameterDict({name.replace(".", "__"): p for name, p in params.items()})
