"""DreamBooth-style LoRA (Ruiz et al. 2023, "DreamBooth", with Hu et al. 2022's low-rank adaptation): the
weight-tuning baseline.

The UNet's attention projections W (``to_q``, ``to_k``, ``to_v``, ``to_out.0``) get trainable low-rank offsets,
W' = W + B·A with A ``(r, in)``, B ``(out, r)`` (B starts at zero, so training starts from the model itself), learned
with the same denoising loss as textual inversion over the concept's images and captions:

    θ* = argmin_{A, B}  E_{x, y, ε, t}  ‖ε − ε_{θ + BA}(z_t, t, c(y))‖²

The concept's token keeps the init word's embedding, frozen. The adapter is added through diffusers' public
``add_adapter`` (peft) for the run and removed afterwards; the result is peft's state dict, which
``load_lora_weights`` loads back (:func:`~diffinv.personalization.load_concept`).
"""

from __future__ import annotations

import time

import torch

from diffinv.personalization.adapters import Offsets, lora_adapter
from diffinv.personalization.base import Concept
from diffinv.personalization.config import LORA_TARGETS, LoRAConfig
from diffinv.personalization.loading import loaded
from diffinv.personalization.problem import ConceptProblem, frozen
from diffinv.pipelines import fingerprint

STREAM = 0x6C6F7261  # "lora": the batch-seed stream of LoRA (diffinv.loop.common.batch_rng)


class LoRA:
    name = "lora"
    title = "LoRA (DreamBooth-style)"

    def learn(self, problem: ConceptProblem, config: LoRAConfig) -> Concept:
        started = time.perf_counter()
        pipe = problem.pipe
        model = fingerprint(pipe, base_model=True)
        start = Concept(problem.token, problem.init_vectors(1))
        compute_loss = problem.loss_function(config, STREAM)
        with loaded(pipe, [start]), frozen(pipe.unet, pipe.text_encoder, pipe.vae):
            with lora_adapter(pipe.unet, config.rank, LORA_TARGETS) as params:
                for p in params.values():
                    p.requires_grad_(True)
                module = Offsets(params)
                optimizer = torch.optim.AdamW(
                    module.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay
                )
                steps, loss = problem.optimise(self.name, {"lora": module}, optimizer, config, compute_loss)
                lora = {name: p.detach().to("cpu", torch.float32).clone() for name, p in params.items()}
        info = problem.info(self.name, config, model, steps, loss, time.perf_counter() - started)
        return Concept(problem.token, start.embeds, info, lora)


METHOD = LoRA()
