"""Stage 2 of the mini training (:mod:`diffinv.train.mini`): pretrain the text encoder to parse captions.

A small :class:`~transformers.CLIPTextModel` (real CLIP BPE tokenizer, EOS padding, context length from the
config: the tokenizer's ``model_max_length``). Linear heads on its last hidden states (:class:`CaptionHeads`)
predict, at every position, what a causal encoder can know there (each object's size, colour, shape and cell
along its phrase, the background after the word ``background``, a 3 x 3 grid of shapes and colours at EOS;
:func:`diffinv.train.data.caption_targets`). This is the part CLIP's pretraining plays for SD; the heads are
dropped. Exported to ``text/final`` with ``text/eval.json`` (held-out caption parsing accuracy).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Mapping, Sequence
from importlib import resources
from pathlib import Path
from typing import Final

import torch
from torch import Tensor, nn
from transformers import CLIPTextConfig, CLIPTextModel, CLIPTokenizer

from diffinv.errors import DiffinvError
from diffinv.loop.common import EMA, FINAL, batch_rng, init_seed, make_optimizer, n_params, write_json
from diffinv.loop.stage import restore_stage, run_stage
from diffinv.shapes.captions import caption
from diffinv.shapes.splits import item_rng, sample_scene
from diffinv.shapes.world import World, get_world
from diffinv.train.config import MiniConfig, TextModelConfig
from diffinv.train.data import IGNORE, caption_heads, caption_targets, sample_train_scenes

TEXT_STREAM: Final[int] = 0x74657874  # "text"
"""First spawn-key entry of the text stage's batch seeds."""


def default_tokenizer_path() -> Path:
    """The CLIP BPE tokenizer files shipped with the package (``assets/clip_tokenizer``)."""
    return Path(str(resources.files("diffinv"))) / "assets" / "clip_tokenizer"


def build_tokenizer(config: TextModelConfig) -> CLIPTokenizer:
    """OpenAI CLIP's BPE tokenizer (EOS padding, as SD 1.x) with ``model_max_length = config.max_length``."""
    return CLIPTokenizer.from_pretrained(str(default_tokenizer_path()), model_max_length=config.max_length)


def build_text_encoder(config: TextModelConfig, tokenizer: CLIPTokenizer) -> CLIPTextModel:
    """A freshly initialised CLIPTextModel over the full CLIP vocabulary: ids ``(B, L)`` → ``(B, L, D)``."""
    return CLIPTextModel(
        CLIPTextConfig(
            vocab_size=len(tokenizer),
            hidden_size=config.hidden_size,
            intermediate_size=config.intermediate_size,
            num_hidden_layers=config.num_hidden_layers,
            num_attention_heads=config.num_attention_heads,
            max_position_embeddings=config.max_length,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    )


def tokenize(tokenizer: CLIPTokenizer, texts: Sequence[str]) -> Tensor:
    """Token ids ``(B, L)``, EOS-padded/truncated to the tokenizer's ``model_max_length`` (as SD pipelines do)."""
    length = int(tokenizer.model_max_length)
    batch = tokenizer(list(texts), padding="max_length", max_length=length, truncation=True, return_tensors="pt")
    return batch.input_ids


class CaptionHeads(nn.Module):
    """Linear heads ``(B, L, D)`` → ``{name: (B, L, n)}`` (cell heads ``(B, L, 9, n / 9)``) over
    :func:`~diffinv.train.data.caption_heads` of ``world``; used only by the text stage and then discarded."""

    def __init__(self, hidden_size: int, world: World) -> None:
        super().__init__()
        self.heads = nn.ModuleDict({name: nn.Linear(hidden_size, n) for name, n in caption_heads(world).items()})

    def forward(self, hidden: Tensor) -> dict[str, Tensor]:
        out = {}
        for name, head in self.heads.items():
            logits = head(hidden)
            out[name] = logits.unflatten(-1, (9, -1)) if name.startswith("cell") else logits
        return out


def caption_loss(logits: Mapping[str, Tensor], targets: Mapping[str, Tensor]) -> Tensor:
    """Sum over the heads of the mean cross-entropy of their trained positions."""
    total = torch.zeros(())
    for name, target in targets.items():
        if (target != IGNORE).any():
            total = total + nn.functional.cross_entropy(
                logits[name].flatten(0, -2), target.flatten(), ignore_index=IGNORE
            )
    return total


@torch.no_grad()
def caption_accuracy(logits: Mapping[str, Tensor], targets: Mapping[str, Tensor]) -> dict[str, float]:
    """Per-head accuracy over the trained positions (the cell heads over their non-empty cells for colour)."""
    scores = {}
    for name, target in targets.items():
        mask = target != IGNORE
        if mask.any():
            hits = logits[name].argmax(-1)[mask] == target[mask]
            scores[name] = round(float(hits.float().mean()), 4)
    return scores


def _text_batch(tokenizer: CLIPTokenizer, texts: Sequence[str], world: str) -> tuple[Tensor, dict[str, Tensor]]:
    return tokenize(tokenizer, texts), caption_targets(texts, int(tokenizer.model_max_length), world)


def train_text(
    config: MiniConfig, work: Path, *, resume: bool = False, minutes: float | None = None, progress: bool = True
) -> CLIPTextModel:
    """Stage 2: pretrain the text encoder into ``work/text`` (see :class:`TextTrainConfig`); returns it (EMA)."""
    cfg = config.text
    folder = work / "text"
    torch.set_num_threads(config.num_threads)
    tokenizer = build_tokenizer(config.unet.text)

    def fresh() -> tuple[CLIPTextModel, CaptionHeads]:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(init_seed(config.seed, 1))
            text_encoder = build_text_encoder(config.unet.text, tokenizer)
            torch.manual_seed(init_seed(config.seed, 3))
            heads = CaptionHeads(config.unet.text.hidden_size, get_world(config.world))
        return text_encoder, heads

    text_encoder, heads = fresh()
    modules: dict[str, nn.Module] = {"text_encoder": text_encoder, "heads": heads}
    ema = EMA(modules, cfg.ema_decay)
    optimizer = make_optimizer([text_encoder, heads], cfg.learning_rate, cfg.weight_decay)
    state = restore_stage("text", folder, modules, ema, optimizer, cfg, resume)

    def batch_loss(step: int) -> tuple[Tensor, dict[str, float]]:
        rng, _ = batch_rng(config.seed, TEXT_STREAM, step)
        scenes = sample_train_scenes(rng, cfg.batch_size, cfg.object_probs, world=config.world)
        ids, targets = _text_batch(tokenizer, [caption(s, rng) for s in scenes], config.world)
        return caption_loss(heads(text_encoder(ids)[0]), targets), {}

    print(f"text: {n_params(text_encoder):,} parameters, from step {state['step']}", flush=True)
    text_encoder.train()
    run = run_stage(
        "text", folder, modules, ema, optimizer, cfg, config.seed, state, batch_loss, minutes=minutes, progress=progress
    )
    averaged, averaged_heads = fresh()
    ema.copy_to({"text_encoder": averaged, "heads": averaged_heads})
    averaged.eval()
    scenes = [
        sample_scene(item_rng("test", cfg.eval_seed, i), "test", world=config.world) for i in range(cfg.eval_captions)
    ]
    texts = [caption(s, item_rng("test", cfg.eval_seed, i, "caption")) for i, s in enumerate(scenes)]
    ids, targets = _text_batch(tokenizer, texts, config.world)
    with torch.no_grad():
        scores = caption_accuracy(averaged_heads(averaged(ids)[0]), targets)
    final = folder / FINAL
    if final.exists():
        shutil.rmtree(final)
    averaged.save_pretrained(final / "text_encoder", safe_serialization=True)
    tokenizer.save_pretrained(final / "tokenizer")
    write_json(folder / "eval.json", {**run.state, "complete": run.step >= cfg.steps, "accuracy": scores})
    print(f"text: step {run.step}, held-out caption parsing accuracy {json.dumps(scores)}", flush=True)
    return averaged


def import_text_encoder(config: MiniConfig, source: Path, work: Path) -> Path:
    """Instead of the text stage: copy the text encoder of the assembled pipeline folder ``source`` (e.g. the
    shipped ``mini``, in fp16) into ``work/text/final`` in fp32, checked against ``config.unet.text``, with the
    tokenizer; ``work/text/imported.json`` records where it came from. Returns the exported folder."""
    path = source / "text_encoder"
    if not (path / "config.json").is_file():
        raise DiffinvError(f"{source}: no text_encoder folder to import")
    tokenizer = build_tokenizer(config.unet.text)
    encoder = build_text_encoder(config.unet.text, tokenizer)
    state = CLIPTextModel.from_pretrained(path).state_dict()
    try:
        encoder.load_state_dict({k: v.float() for k, v in state.items()})
    except RuntimeError as exc:
        raise DiffinvError(f"{path}: does not match the config's text encoder ({exc})") from None
    final = work / "text" / FINAL
    if final.exists():
        shutil.rmtree(final)
    encoder.eval().save_pretrained(final / "text_encoder", safe_serialization=True)
    tokenizer.save_pretrained(final / "tokenizer")
    write_json(work / "text" / "imported.json", {"source": str(source.resolve()), "complete": True})
    print(f"text: imported the text encoder of {source}", flush=True)
    return final


def load_text_encoder(work: Path) -> CLIPTextModel:
    """The exported text encoder of the ``text`` stage (eval mode)."""
    path = work / "text" / FINAL / "text_encoder"
    if not (path / "config.json").is_file():
        raise DiffinvError(f"{work}: no pretrained text encoder; run the text stage first")
    return CLIPTextModel.from_pretrained(path).eval()
