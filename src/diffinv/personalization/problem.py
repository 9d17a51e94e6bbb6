"""The input of every personalization method (:class:`ConceptProblem`) and the building blocks it hands a method:
the training images' latents, their captions, the initial vectors, and the optimisation run — the training stage
loop of :mod:`diffinv.loop.stage` (constant or warm-up LR, a progress bar with the loss, checkpoints every
``checkpoint_every`` steps, resume, SIGTERM), so a long learning run survives an interruption.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import tempfile
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np
import torch
from diffusers import StableDiffusionPipeline
from torch import Tensor, nn

from diffinv import images
from diffinv.denoiser import Denoiser, Schedule
from diffinv.errors import DiffinvError
from diffinv.loop.common import batch_rng, write_json
from diffinv.loop.stage import StageConfig, restore_stage, run_stage
from diffinv.personalization.base import ConceptInfo
from diffinv.personalization.config import LearningConfig
from diffinv.personalization.templates import PLACEHOLDER, TEMPLATES
from diffinv.pipelines import ModelFingerprint
from diffinv.text import expand_prompt, text_embeddings

IDENTITY_FILE: Final[str] = "concept.json"
"""What a checkpoint folder learns (token, images, captions, seed): a resumed run must learn the same thing."""


@dataclass(frozen=True)
class ConceptProblem:
    """What to learn and from what.

    Attributes:
        pipe: the model (any SD 1.x/2.x pipeline).
        pixels: ``(N, 3, H, W)`` training images in [-1, 1].
        token: the new token.
        init_word: a word of the vocabulary (one token) whose embedding starts the vectors.
        property: ``object`` or ``style`` (chooses the paper's template set when ``captions`` is ``None``).
        captions: one caption template per image with ``{}`` for the token, or ``None``.
        seed: seeds every random draw of step ``k`` as a function of ``(seed, k)``.
        checkpoint_dir: where checkpoints go (``None``: a temporary folder, nothing kept).
        resume: continue from ``checkpoint_dir``'s newest checkpoint.
        progress: show a progress bar with the loss.
    """

    pipe: StableDiffusionPipeline
    pixels: Tensor
    token: str
    init_word: str
    property: str
    captions: tuple[str, ...] | None
    seed: int
    checkpoint_dir: Path | None = None
    resume: bool = False
    progress: bool = False

    @property
    def shots(self) -> int:
        return int(self.pixels.shape[0])

    def latents(self) -> tuple[Tensor, Tensor]:
        """The images' latents ``(N, C, h, w)`` and those of their horizontal mirror images (VAE posterior means)."""
        vae = self.pipe.vae
        return images.encode(vae, self.pixels), images.encode(vae, self.pixels.flip(-1))

    def prompts(self, indices: np.ndarray, rng: np.random.Generator) -> list[str]:
        """A caption for each image index, the token in place of ``{}`` and multi-vector tokens expanded: the
        image's caption template, or a random template of the paper's set for the concept's property."""
        chosen = []
        for i in indices:
            if self.captions is not None:
                template = self.captions[int(i)]
            else:
                options = TEMPLATES[self.property]
                template = options[int(rng.integers(len(options)))]
            chosen.append(expand_prompt(self.pipe, template.replace(PLACEHOLDER, self.token)))
        return chosen

    def loss_function(self, config: LearningConfig, stream: int) -> Callable[[int, int], Tensor]:
        """``loss(seed, step)``: the denoising loss (:meth:`~diffinv.denoiser.Denoiser.denoising_loss`, mean) of
        batch ``step``: ``config.batch_size`` random shots, each mirrored with ``config.flip_probability``, with
        their captions (:meth:`prompts`; empty with ``config.caption_dropout``) through the text encoder; every draw
        from ``(seed, stream, step)``."""
        pipe = self.pipe
        latents, mirrored = self.latents()
        denoiser = Denoiser(pipe.unet, Schedule.training(pipe.scheduler.config))

        def loss(seed: int, step: int) -> Tensor:
            rng, generator = batch_rng(seed, stream, step)
            index = rng.integers(self.shots, size=config.batch_size)
            flip = torch.from_numpy(rng.random(config.batch_size) < config.flip_probability)
            clean = torch.where(flip.view(-1, 1, 1, 1).to(latents.device), mirrored[index], latents[index])
            prompts = self.prompts(index, rng)
            if config.caption_dropout > 0:
                prompts = ["" if rng.random() < config.caption_dropout else p for p in prompts]
            embeds = text_embeddings(pipe, prompts)
            return denoiser.denoising_loss(clean, embeds, generator).mean()

        return loss

    def init_vectors(self, num_vectors: int) -> Tensor:
        """``(num_vectors, D)`` float32: the init word's embedding (:func:`word_vector`), repeated (as diffusers'
        textual-inversion example)."""
        return word_vector(self.pipe, self.init_word, "init word").expand(num_vectors, -1).clone()

    def info(
        self,
        method: str,
        config: LearningConfig,
        model: ModelFingerprint,
        steps: int,
        loss: float | None,
        seconds: float,
        init_word: str | None = None,
    ) -> ConceptInfo:
        """The description of a concept learned from this problem (``init_word``: the word the method actually
        started from, if not the problem's). A loss that is not finite means the optimisation diverged: refused,
        naming the learning rate, rather than saving vectors that are NaN or meaningless."""
        if loss is not None and not math.isfinite(loss):
            raise DiffinvError(
                f"learning diverged (loss {loss}) at learning_rate {getattr(config, 'learning_rate', '?')}; "
                "use a smaller learning rate"
            )
        return ConceptInfo(
            method=method,
            init_word=self.init_word if init_word is None else init_word,
            property=self.property,
            model_fingerprint=model,
            config=config.to_dict(),
            shots=self.shots,
            steps=steps,
            seconds=round(seconds, 3),
            loss=None if loss is None else float(loss),
        )

    def identity(self, method: str) -> dict[str, Any]:
        digest = hashlib.sha256(self.pixels.detach().to("cpu", torch.float32).numpy().tobytes()).hexdigest()[:16]
        return {
            "method": method,
            "token": self.token,
            "init_word": self.init_word,
            "property": self.property,
            "captions": None if self.captions is None else list(self.captions),
            "images": f"sha256:{digest}",
        }

    def optimise(
        self,
        method: str,
        modules: Mapping[str, nn.Module],
        optimizer: torch.optim.Optimizer,
        config: StageConfig,
        compute_loss: Callable[[int, int], Tensor],
    ) -> tuple[int, float | None]:
        """Run ``config.steps`` optimisation steps of ``compute_loss(seed, step)`` over ``modules``' parameters
        (checkpointed in :attr:`checkpoint_dir`, resumed from it with :attr:`resume`); returns the steps done and
        the loss's moving average. A resumed run keeps the seed of the run it continues."""
        with contextlib.ExitStack() as stack:
            folder = self.checkpoint_dir or Path(stack.enter_context(tempfile.TemporaryDirectory()))
            shapes = {f"{key}.{name}": list(p.shape) for key, m in modules.items() for name, p in m.named_parameters()}
            identity = {**self.identity(method), "parameters": shapes}
            seed = self.seed
            if self.resume:
                seed = self._check_identity(folder, identity)
            state = restore_stage(method, folder, modules, None, optimizer, config, self.resume)
            if not self.resume:
                write_json(folder / IDENTITY_FILE, {**identity, "seed": seed})
            run = run_stage(
                method,
                folder,
                modules,
                None,
                optimizer,
                config,
                seed,
                state,
                lambda step: (compute_loss(seed, step), {}),
                progress=self.progress,
            )
            return run.step, run.state.get("loss_ema")

    @staticmethod
    def _check_identity(folder: Path, identity: Mapping[str, Any]) -> int:
        try:
            saved = json.loads((folder / IDENTITY_FILE).read_text())
            seed = int(saved.pop("seed"))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            raise DiffinvError(f"{folder}: no checkpoint of a concept to resume") from None
        differ = sorted(key for key in saved.keys() | identity.keys() if saved.get(key) != identity.get(key))
        if differ:
            names = {"parameters": "the parameter shapes (number of vectors, LoRA rank)"}
            what = ", ".join(names.get(key, key) for key in differ)
            raise DiffinvError(f"{folder}: its checkpoint learns another concept (it differs in {what})")
        return seed


def word_vector(pipe: StableDiffusionPipeline, word: str, role: str) -> Tensor:
    """``(D,)`` float32 on the CPU: the row of ``pipe``'s token-embedding table for ``word``. Raises
    :class:`DiffinvError` naming the ``role`` (init word, class word) unless the word is exactly one token."""
    ids = pipe.tokenizer(word, add_special_tokens=False).input_ids
    if len(ids) != 1:
        raise DiffinvError(f"the {role} {word!r} is {len(ids)} tokens for this tokenizer; give a word that is one")
    return pipe.text_encoder.get_input_embeddings().weight[ids[0]].detach().to("cpu", torch.float32)


class Vectors(nn.Module):
    """A new token's vectors ``(k, D)`` as a module (what checkpoints hold)."""

    def __init__(self, init: Tensor) -> None:
        super().__init__()
        self.embeds = nn.Parameter(init.detach().clone())


@contextlib.contextmanager
def frozen(*modules: nn.Module) -> Iterator[None]:
    """Turn off gradients of ``modules``' parameters for the block, restoring each parameter's flag afterwards."""
    flags = [(p, p.requires_grad) for module in modules for p in module.parameters()]
    try:
        for p, _ in flags:
            p.requires_grad_(False)
        yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)


@contextlib.contextmanager
def substituted(pipe: StableDiffusionPipeline, tokens: list[str], vectors: Tensor) -> Iterator[None]:
    """While the block runs, the text encoder's token-embedding layer outputs row ``j`` of ``vectors`` ``(k, D)``
    wherever its input is ``tokens[j]`` — or, for per-prompt vectors ``(B, k, D)``, row ``j`` of prompt ``b``'s in
    prompt ``b`` — (a forward hook, removed afterwards): gradients reach ``vectors`` and no other row of the table,
    so only the new tokens learn."""
    ids = torch.tensor(pipe.tokenizer.convert_tokens_to_ids(tokens))

    def hook(module: nn.Module, args: tuple[Any, ...], output: Tensor) -> Tensor:
        input_ids = args[0]
        match = input_ids.unsqueeze(-1) == ids.to(input_ids.device)
        found = match.any(-1, keepdim=True)
        index = match.long().argmax(-1)
        if vectors.ndim == 3:
            rows = vectors.to(output)[torch.arange(index.shape[0], device=index.device).unsqueeze(1), index]
        else:
            rows = vectors.to(output)[index]
        return torch.where(found, rows, output)

    handle = pipe.text_encoder.get_input_embeddings().register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()
