"""Load any Stable Diffusion-family pipeline and fingerprint its weights.

Accepted model references (:func:`load_pipeline`):

* a built-in name (shipped in the package, offline),
* a local diffusers folder (``model_index.json`` inside),
* a single-file checkpoint ending in ``.safetensors`` (``from_single_file``; pickled ``.ckpt``/``.bin``/``.pt``
  files are refused),
* a Hugging Face Hub id such as ``org/name`` — downloaded only because the user named it.

Stable Diffusion 1.x/2.x load as ``StableDiffusionPipeline`` and SDXL (base) as ``StableDiffusionXLPipeline``; any
other pipeline class is refused naming what it is.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import torch
from diffusers import DiffusionPipeline, StableDiffusionPipeline, StableDiffusionXLPipeline
from safetensors import SafetensorError, safe_open

from diffinv.conditioning import unet_pooled_width
from diffinv.errors import DiffinvError

DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
DEVICES = ("cpu", "cuda", "mps")
# Built-in pipelines shipped as package data under diffinv/assets/models/<name>: "mini" is the miniature SD trained
# on the Shapes world (python -m diffinv.train.mini; docs/mini.md).
BUILTIN_MODELS: tuple[str, ...] = ("mini",)
DEFAULT_MODEL: str = "mini"
PICKLE_SUFFIXES = (".ckpt", ".bin", ".pt", ".pth", ".pkl")
HUB_ID = re.compile(r"^[A-Za-z0-9][\w.\-]*/[\w.\-]+$")
# Fingerprint: elements sampled per weight tensor, projections per model, and the allowed signature difference.
FINGERPRINT_SAMPLES_PER_TENSOR = 1024
FINGERPRINT_SIGNATURE_SIZE = 8
FINGERPRINT_TOLERANCE = 0.05


def resolve_dtype(dtype: str | torch.dtype | None) -> torch.dtype:
    """``"fp32" | "bf16" | "fp16"`` or a torch dtype → torch dtype (``None`` → float32, the CPU default)."""
    if dtype is None:
        return torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype not in DTYPES:
        raise DiffinvError(f"unknown dtype {dtype!r}; choose one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """Validate a device name; a missing accelerator is a clear error, not a crash later."""
    try:
        dev = torch.device(device or "cpu")
    except RuntimeError:
        dev = None
    if dev is None or dev.type not in DEVICES:
        raise DiffinvError(f"unknown device {str(device)!r}; choose one of {', '.join(DEVICES)}")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise DiffinvError("device 'cuda' was requested but no CUDA device is available")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise DiffinvError("device 'mps' was requested but MPS is not available")
    return dev


def builtin_model_path(name: str) -> Path:
    """Folder of the built-in pipeline ``name`` inside the installed package."""
    return Path(str(resources.files("diffinv") / "assets" / "models" / name))


Pipeline = StableDiffusionPipeline | StableDiffusionXLPipeline
"""The pipelines diffinv works with."""


def load_pipeline(
    model: str | Path | None = None,
    *,
    device: str | torch.device | None = "cpu",
    dtype: str | torch.dtype | None = None,
) -> Pipeline:
    """Load a Stable Diffusion or SDXL pipeline (see the module docstring for what ``model`` may be).

    An SDXL VAE that asks for it (``force_upcast``, as SDXL's original VAE) stays in float32 in an fp16 pipeline,
    as diffusers' SDXL pipeline upcasts it: in fp16 it overflows to NaN.

    Args:
        model: built-in name, local folder, ``.safetensors`` file or hub id; ``None`` means the default built-in
            model (:data:`DEFAULT_MODEL`).
        device: ``cpu`` (default), ``cuda`` or ``mps``.
        dtype: ``fp32`` (default), ``bf16`` or ``fp16`` (or a torch dtype).

    Raises:
        DiffinvError: with one line saying what was tried, when nothing could be loaded.
    """
    torch_dtype = resolve_dtype(dtype)
    torch_device = resolve_device(device)
    pipe = _load(str(DEFAULT_MODEL if model is None else model), torch_dtype)
    pipe.set_progress_bar_config(disable=True)
    pipe = pipe.to(torch_device)
    if isinstance(pipe, StableDiffusionXLPipeline) and pipe.vae.dtype == torch.float16 and pipe.vae.config.force_upcast:
        pipe.vae.to(torch.float32)
    return pipe


# The pipeline classes whose folders hold exactly SD 1.x/2.x's or SDXL base's components (an img2img folder is the
# same model saved by another pipeline class), and the class each loads as.
PIPELINE_CLASSES: dict[str, type[Pipeline]] = {
    "StableDiffusionPipeline": StableDiffusionPipeline,
    "StableDiffusionImg2ImgPipeline": StableDiffusionPipeline,
    "StableDiffusionXLPipeline": StableDiffusionXLPipeline,
    "StableDiffusionXLImg2ImgPipeline": StableDiffusionXLPipeline,
}


def _pipeline_class(name: Any, where: str) -> type[Pipeline]:
    """The class a model saved by pipeline class ``name`` loads as; refuse any other, naming what it is."""
    if name not in PIPELINE_CLASSES:
        raise DiffinvError(f"{where} holds a {name} model; diffinv works with Stable Diffusion 1.x/2.x and SDXL "
                           f"models ({', '.join(PIPELINE_CLASSES)})")  # fmt: skip
    return PIPELINE_CLASSES[name]


def _folder_class(folder: Path) -> type[Pipeline]:
    try:
        name = json.loads((folder / "model_index.json").read_text(encoding="utf-8")).get("_class_name")
    except (OSError, ValueError, AttributeError) as exc:
        raise DiffinvError(f"{folder}/model_index.json is not readable JSON ({_first_line(exc)})") from None
    return _pipeline_class(name, str(folder))


def _single_file_class(path: Path) -> type[Pipeline]:
    """SDXL for a checkpoint in the original SDXL layout (its text encoders under ``conditioner.embedders``),
    otherwise Stable Diffusion."""
    try:
        with safe_open(str(path), framework="pt") as handle:
            sdxl = any(key.startswith("conditioner.embedders.1.") for key in handle.keys())  # noqa: SIM118
    except (SafetensorError, OSError) as exc:
        raise DiffinvError(f"{path}: not a readable single-file checkpoint ({_first_line(exc)})") from None
    return StableDiffusionXLPipeline if sdxl else StableDiffusionPipeline


def _check_components(pipe: Pipeline, model: str) -> Pipeline:
    """Refuse a loaded pipeline whose UNet is not a plain text-to-image UNet of its family: SD 1.x/2.x condition on
    hidden states only, SDXL base on hidden states, a pooled embedding and size (refiners, with one text encoder and
    an aesthetic score, are refused); an inpainting UNet takes a mask and a masked image beside the latent."""
    unet = pipe.unet.config
    if isinstance(pipe, StableDiffusionXLPipeline):
        encoder = pipe.text_encoder_2
        if pipe.text_encoder is None or encoder is None or unet.addition_embed_type != "text_time":
            raise DiffinvError(f"{model} is an SDXL model without both text encoders and size conditioning (a "
                               "refiner?); diffinv works with SDXL base models")  # fmt: skip
        pooled, given = unet_pooled_width(pipe.unet), encoder.config.projection_dim
        if pooled != given:
            raise DiffinvError(f"{model}: the UNet takes a pooled text embedding of width {pooled} with 6 size ids, "
                               f"but text_encoder_2 gives {given}")  # fmt: skip
    elif unet.addition_embed_type is not None or unet.class_embed_type is not None:
        kind = "an SDXL-style UNet" if unet.addition_embed_type == "text_time" else "a UNet with extra conditioning"
        raise DiffinvError(f"{model} has {kind} ({unet.addition_embed_type or unet.class_embed_type}) in a "
                           "Stable Diffusion pipeline; diffinv works with Stable Diffusion 1.x/2.x and SDXL "
                           "models")  # fmt: skip
    if unet.in_channels != pipe.vae.config.latent_channels:
        channels = pipe.vae.config.latent_channels
        raise DiffinvError(f"{model} has a UNet taking {unet.in_channels} channels for {channels}-channel latents "
                           "(an inpainting model?); diffinv works with text-to-image models")  # fmt: skip
    return pipe


def _load(model: str, torch_dtype: torch.dtype) -> Pipeline:
    return _check_components(_load_any(model, torch_dtype), model)


def _options(cls: type[Pipeline], torch_dtype: torch.dtype) -> dict[str, Any]:
    """``from_pretrained``'s keyword arguments for ``cls`` (SD's safety checker is not loaded; SDXL has none)."""
    if cls is StableDiffusionXLPipeline:
        return {"dtype": torch_dtype}
    return {"dtype": torch_dtype, "safety_checker": None, "requires_safety_checker": False}


def _load_any(model: str, torch_dtype: torch.dtype) -> Pipeline:
    common = _options(StableDiffusionPipeline, torch_dtype)
    if model in BUILTIN_MODELS:
        folder = builtin_model_path(model)
        if not (folder / "model_index.json").is_file():
            raise DiffinvError(f"the built-in model {model!r} is missing from this installation ({folder})")
        return StableDiffusionPipeline.from_pretrained(folder, local_files_only=True, **common)
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise DiffinvError(f"{path} is a folder but not a diffusers pipeline (no model_index.json)")
        cls = _folder_class(path)
        try:
            return cls.from_pretrained(path, local_files_only=True, **_options(cls, torch_dtype))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DiffinvError(f"could not load the diffusers folder {path}: {_first_line(exc)}") from None
    if path.is_file():
        if path.suffix.lower() in PICKLE_SUFFIXES:
            raise DiffinvError(f"{path.name}: pickled checkpoints are not loaded (unsafe); convert it to .safetensors")
        if path.suffix.lower() != ".safetensors":
            raise DiffinvError(f"{path}: expected a diffusers folder or a .safetensors checkpoint")
        cls = _single_file_class(path)
        try:
            return cls.from_single_file(str(path), **_options(cls, torch_dtype))
        except Exception as exc:  # noqa: BLE001 - from_single_file raises many types; all mean "cannot load"
            raise DiffinvError(
                f"could not load the single-file checkpoint {path} (from_single_file also needs the model's "
                f"config, fetched from the Hub unless cached): {_first_line(exc)}"
            ) from None
    if HUB_ID.match(model) and not model.startswith((".", "/", "~")):
        try:
            cls = _pipeline_class(DiffusionPipeline.load_config(model).get("_class_name"), model)
            return cls.from_pretrained(model, **_options(cls, torch_dtype))
        except DiffinvError:
            raise
        except Exception as exc:  # noqa: BLE001 - network, auth and format errors all mean "cannot load"
            raise DiffinvError(
                f"could not load {model!r} from the Hugging Face Hub or its local cache "
                f"(offline, or not a Stable Diffusion pipeline): {_first_line(exc)}"
            ) from None
    known = f"; built-in models: {', '.join(BUILTIN_MODELS)}" if BUILTIN_MODELS else ""
    raise DiffinvError(f"model {model!r} is not a built-in name, an existing path, or a hub id{known}")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}"


def default_size(pipe: StableDiffusionPipeline) -> tuple[int, int]:
    """The pipeline's native ``(height, width)`` in pixels: UNet sample size × VAE scale factor."""
    sample = pipe.unet.config.sample_size
    h, w = (sample, sample) if isinstance(sample, int) else tuple(sample)
    return h * pipe.vae_scale_factor, w * pipe.vae_scale_factor


def _config_dict(config: Any) -> dict[str, Any]:
    data = dict(config.to_dict() if hasattr(config, "to_dict") else config)
    volatile = ("_name_or_path", "_diffusers_version", "transformers_version", "torch_dtype", "dtype", "_commit_hash")
    return {k: v for k, v in sorted(data.items()) if k not in volatile and not k.startswith("_use_default")}


@dataclass(frozen=True)
class ModelFingerprint:
    """Identity of a pipeline's UNet, text encoder(s) and VAE, stable across dtypes and devices.

    Attributes:
        config_hash: ``"sha256:<16 hex>"`` over the models' configs and every parameter's name and shape.
        weight_signature: :data:`FINGERPRINT_SIGNATURE_SIZE` numbers per model: random ±1 projections of up to
            :data:`FINGERPRINT_SAMPLES_PER_TENSOR` strided elements of every weight, divided by their norm. Each is
            ~N(0, 1) for unrelated weights and moves by ~1e-3 when the same weights are rounded to bf16/fp16, so two
            fingerprints match when the config hashes are equal and every signature number is within
            :data:`FINGERPRINT_TOLERANCE`.
    """

    config_hash: str
    weight_signature: tuple[float, ...]

    def matches(self, other: ModelFingerprint) -> bool:
        if self.config_hash != other.config_hash or len(self.weight_signature) != len(other.weight_signature):
            return False
        pairs = zip(self.weight_signature, other.weight_signature, strict=True)
        return all(abs(a - b) <= FINGERPRINT_TOLERANCE for a, b in pairs)

    def __str__(self) -> str:
        head = ",".join(f"{s:+.3f}" for s in self.weight_signature[:3])
        return f"{self.config_hash} (weights {head},...)"

    def to_dict(self) -> dict[str, Any]:
        return {"config_hash": self.config_hash, "weight_signature": list(self.weight_signature)}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelFingerprint:
        return cls(str(data["config_hash"]), tuple(float(x) for x in data["weight_signature"]))


def fingerprint(pipe: StableDiffusionPipeline, *, base_model: bool = False) -> ModelFingerprint:
    """Fingerprint ``pipe``'s UNet, text encoder(s) (SDXL's second too) and VAE (see :class:`ModelFingerprint`).

    With ``base_model``, what concepts add is left out — the text encoder's token-embedding table and vocabulary
    size, and LoRA adapter layers (their wrapped weights count under their own names) — so the fingerprint stays the
    same when textual-inversion tokens or LoRA adapters are loaded (what a learned concept records of its model).
    """
    digest = hashlib.sha256()
    signature: list[float] = []
    table = pipe.text_encoder.get_input_embeddings().weight if base_model else None
    encoders = [e for e in (pipe.text_encoder, getattr(pipe, "text_encoder_2", None)) if e is not None]
    for module in (pipe.unet, *encoders, pipe.vae):
        config = _config_dict(module.config)
        skipped: set[str] = set()
        if module is pipe.text_encoder and table is not None:
            config.pop("vocab_size", None)
            skipped = {name for name, p in module.named_parameters() if p is table}
        digest.update(json.dumps(config, sort_keys=True, default=str).encode())
        samples = []
        state = module.state_dict().items()
        if base_model:
            state = [(k.replace(".base_layer.", "."), v) for k, v in state if ".lora_" not in k]
        for name, tensor in sorted(state):
            if name in skipped:
                continue
            digest.update(f"{name}:{tuple(tensor.shape)}".encode())
            flat = tensor.detach().reshape(-1)
            stride = max(1, flat.numel() // FINGERPRINT_SAMPLES_PER_TENSOR)
            samples.append(flat[::stride][:FINGERPRINT_SAMPLES_PER_TENSOR].to("cpu", torch.float64))
        values = torch.cat(samples)
        signs = torch.randint(
            0, 2, (FINGERPRINT_SIGNATURE_SIZE, values.numel()), generator=torch.Generator().manual_seed(0)
        )
        projection = (signs.to(torch.float64) * 2 - 1) @ values / values.norm().clamp_min(1e-30)
        signature.extend(round(float(x), 6) for x in projection)
    return ModelFingerprint("sha256:" + digest.hexdigest()[:16], tuple(signature))
