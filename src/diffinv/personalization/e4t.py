"""E4T: encoder-based domain tuning (Gal et al. 2023, "Encoder-based Domain Tuning for Fast Personalization").

A domain encoder, pre-trained once (:mod:`diffinv.train.e4t`), maps a shot of the concept to the word embedding
w₀ = e_class + Δw and to low-rank cross-attention offsets ΔW₀ (:mod:`~diffinv.personalization.e4t_encoder`); the
concept is then tuned for a few steps with the denoising loss on the shot(s), starting from that prediction:

    (w, ΔW) = argmin  E_{x, y, ε, t} ‖ε − ε_{θ + ΔW}(z_t, t, c(y; w))‖²,   from (w₀, ΔW₀), 5–15 steps

With several shots the encoder's predictions are averaged. The result is a concept with an embedding and LoRA
offsets, loaded and removed like any (:func:`~diffinv.personalization.load_concept`).
"""

from __future__ import annotations

import time
from importlib import resources
from pathlib import Path

import torch

from diffinv.errors import DiffinvError
from diffinv.personalization.adapters import Offsets, lora_adapter
from diffinv.personalization.base import Concept
from diffinv.personalization.config import E4TConfig
from diffinv.personalization.e4t_encoder import E4TEncoder
from diffinv.personalization.loading import loaded
from diffinv.personalization.problem import ConceptProblem, Vectors, frozen, substituted, word_vector
from diffinv.pipelines import fingerprint

STREAM = 0x65347475  # "e4tu": the batch-seed stream of E4T tuning (diffinv.loop.common.batch_rng)
SHIPPED_ENCODER = "mini-e4t"


def shipped_encoder() -> Path:
    """The encoder shipped for the built-in model."""
    return Path(str(resources.files("diffinv") / "assets" / "models" / SHIPPED_ENCODER))


class E4T:
    name = "e4t"
    title = "E4T (encoder + tuning)"

    def learn(self, problem: ConceptProblem, config: E4TConfig) -> Concept:
        started = time.perf_counter()
        pipe = problem.pipe
        model = fingerprint(pipe, base_model=True)
        encoder, trained_for = E4TEncoder.load(config.encoder or shipped_encoder())
        if not trained_for.matches(model):
            raise DiffinvError(f"the E4T encoder was pre-trained for model {trained_for}, but this model is {model}")
        class_word = encoder.config.class_word
        class_vector = word_vector(pipe, class_word, "class word")
        encoder = encoder.to(pipe.unet.device)
        with torch.no_grad():
            word, coefficients = encoder(problem.pixels.to(pipe.unet.device, torch.float32))
            predicted = encoder.lora(coefficients.mean(0))
        holder = Vectors((class_vector.to(word) + word.mean(0)).unsqueeze(0))
        vectors = holder.embeds
        start = Concept(problem.token, vectors.detach().cpu())
        compute_loss = problem.loss_function(config, STREAM)
        targets = [name for name, _, _ in encoder.layers]
        with loaded(pipe, [start]), frozen(pipe.unet, pipe.text_encoder, pipe.vae):
            with lora_adapter(pipe.unet, encoder.config.rank, targets) as params:
                with torch.no_grad():
                    for name, p in params.items():
                        p.copy_(predicted[name])
                for p in params.values():
                    p.requires_grad_(True)
                modules = {"vectors": holder, "lora": Offsets(params)}
                trainable = [vectors, *params.values()]
                optimizer = torch.optim.AdamW(trainable, lr=config.learning_rate, weight_decay=config.weight_decay)
                with substituted(pipe, start.tokens, vectors):
                    steps, loss = problem.optimise(self.name, modules, optimizer, config, compute_loss)
                lora = {name: p.detach().to("cpu", torch.float32).clone() for name, p in params.items()}
        info = problem.info(self.name, config, model, steps, loss, time.perf_counter() - started, class_word)
        return Concept(problem.token, vectors.detach().to("cpu", torch.float32).clone(), info, lora)


METHOD = E4T()
