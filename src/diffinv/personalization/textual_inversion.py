"""Textual inversion (Gal et al. 2022, "An Image is Worth One Word", Eq. 2).

A new token S* gets ``k`` embedding vectors v*, found with the whole model frozen by minimising the latent
diffusion loss over the concept's images x and prompt templates y containing S*:

    v* = argmin_v  E_{x, y, ε ~ N(0, I), t}  ‖ε − ε_θ(z_t, t, c_θ(y; v))‖²,   z_t = sqrt(ᾱ_t) E(x) + sqrt(1 − ᾱ_t) ε

The vectors start from the embedding of a coarse descriptor (``init_word``). Only they receive gradients: a forward
hook substitutes them for the token's rows of the embedding table (every other row and weight stays frozen, so none
has to be restored after a step, as diffusers' example does), and AdamW updates them.
"""

from __future__ import annotations

import time

import torch

from diffinv.personalization.base import Concept
from diffinv.personalization.config import TextualInversionConfig
from diffinv.personalization.loading import loaded
from diffinv.personalization.problem import ConceptProblem, Vectors, frozen, substituted
from diffinv.pipelines import fingerprint

STREAM = 0x7469  # "ti": the batch-seed stream of textual inversion (diffinv.loop.common.batch_rng)


class TextualInversion:
    name = "ti"
    title = "textual inversion"

    def learn(self, problem: ConceptProblem, config: TextualInversionConfig) -> Concept:
        started = time.perf_counter()
        pipe = problem.pipe
        model = fingerprint(pipe, base_model=True)
        start = Concept(problem.token, problem.init_vectors(config.num_vectors))
        vectors = Vectors(start.embeds).to(pipe.text_encoder.device)
        optimizer = torch.optim.AdamW(vectors.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
        compute_loss = problem.loss_function(config, STREAM)

        with loaded(pipe, [start]), frozen(pipe.unet, pipe.text_encoder, pipe.vae):
            with substituted(pipe, start.tokens, vectors.embeds):
                steps, loss = problem.optimise(self.name, {"vectors": vectors}, optimizer, config, compute_loss)
        info = problem.info(self.name, config, model, steps, loss, time.perf_counter() - started)
        return Concept(problem.token, vectors.embeds.detach().to("cpu", torch.float32).clone(), info)


METHOD = TextualInversion()
