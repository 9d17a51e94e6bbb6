"""Load any Stable Diffusion-family pipeline and fingerprint its weights.

Accepted model references (:func:`load_pipeline`):

* a built-in name (shipped in the package, offline),
* a local diffusers folder (``model_index.json`` inside),
* a single-file checkpoint ending in ``.safetensors`` (``StableDiffusionPipeline.from_single_file``; pickled
  ``.ckpt``/``.bin``/``.pt`` files are refused),
* a Hugging Face Hub id such as ``org/name`` — downloaded only because the user named it.
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
from diffusers import StableDiffusionPipeline

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


def load_pipeline(
    model: str | Path | None = None,
    *,
    device: str | torch.device | None = "cpu",
    dtype: str | torch.dtype | None = None,
) -> StableDiffusionPipeline:
    """Load a Stable Diffusion pipeline (see the module docstring for what ``model`` may be).

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
    return pipe.to(torch_device)


# Pipelines whose folders hold exactly SD 1.x/2.x's components (an img2img folder is an SD model saved by another
# pipeline class).
SD_PIPELINE_CLASSES = ("StableDiffusionPipeline", "StableDiffusionImg2ImgPipeline")


def _check_pipeline_class(folder: Path) -> None:
    """Refuse a diffusers folder saved by a pipeline other than Stable Diffusion 1.x/2.x, naming what it is."""
    try:
        name = json.loads((folder / "model_index.json").read_text(encoding="utf-8")).get("_class_name")
    except (OSError, ValueError, AttributeError) as exc:
        raise DiffinvError(f"{folder}/model_index.json is not readable JSON ({_first_line(exc)})") from None
    if name not in SD_PIPELINE_CLASSES:
        raise DiffinvError(f"{folder} holds a {name} model; diffinv works with {' and '.join(SD_PIPELINE_CLASSES)} "
                           "models (Stable Diffusion 1.x/2.x; SDXL is not supported yet)")  # fmt: skip


def _check_components(pipe: StableDiffusionPipeline, model: str) -> StableDiffusionPipeline:
    """Refuse a loaded pipeline whose UNet is not a plain SD 1.x/2.x text-to-image UNet (SDXL's needs pooled text
    and size conditioning; an inpainting UNet takes a mask and a masked image beside the latent)."""
    unet = pipe.unet.config
    if unet.addition_embed_type is not None or unet.class_embed_type is not None:
        kind = "an SDXL-style UNet" if unet.addition_embed_type == "text_time" else "a UNet with extra conditioning"
        raise DiffinvError(f"{model} has {kind} ({unet.addition_embed_type or unet.class_embed_type}); diffinv works "
                           "with Stable Diffusion 1.x/2.x models (SDXL is not supported yet)")  # fmt: skip
    if unet.in_channels != pipe.vae.config.latent_channels:
        channels = pipe.vae.config.latent_channels
        raise DiffinvError(f"{model} has a UNet taking {unet.in_channels} channels for {channels}-channel latents "
                           "(an inpainting model?); diffinv works with text-to-image models")  # fmt: skip
    return pipe


def _load(model: str, torch_dtype: torch.dtype) -> StableDiffusionPipeline:
    return _check_components(_load_any(model, torch_dtype), model)


def _load_any(model: str, torch_dtype: torch.dtype) -> StableDiffusionPipeline:
    common: dict[str, Any] = {"dtype": torch_dtype, "safety_checker": None, "requires_safety_checker": False}
    if model in BUILTIN_MODELS:
        folder = builtin_model_path(model)
        if not (folder / "model_index.json").is_file():
            raise DiffinvError(f"the built-in model {model!r} is missing from this installation ({folder})")
        return StableDiffusionPipeline.from_pretrained(folder, local_files_only=True, **common)
    path = Path(model).expanduser()
    if path.is_dir():
        if not (path / "model_index.json").is_file():
            raise DiffinvError(f"{path} is a folder but not a diffusers pipeline (no model_index.json)")
        _check_pipeline_class(path)
        try:
            return StableDiffusionPipeline.from_pretrained(path, local_files_only=True, **common)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise DiffinvError(f"could not load the diffusers folder {path}: {_first_line(exc)}") from None
    if path.is_file():
        if path.suffix.lower() in PICKLE_SUFFIXES:
            raise DiffinvError(f"{path.name}: pickled checkpoints are not loaded (unsafe); convert it to .safetensors")
        if path.suffix.lower() != ".safetensors":
            raise DiffinvError(f"{path}: expected a diffusers folder or a .safetensors checkpoint")
        try:
            return StableDiffusionPipeline.from_single_file(str(path), **common)
        except Exception as exc:  # noqa: BLE001 - from_single_file raises many types; all mean "cannot load"
            raise DiffinvError(
                f"could not load the single-file checkpoint {path} (from_single_file also needs the model's "
                f"config, fetched from the Hub unless cached): {_first_line(exc)}"
            ) from None
    if HUB_ID.match(model) and not model.startswith((".", "/", "~")):
        try:
            return StableDiffusionPipeline.from_pretrained(model, **common)
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
    """Identity of a pipeline's UNet, text encoder and VAE, stable across dtypes and devices.

    Attributes:
        config_hash: ``"sha256:<16 hex>"`` over the three models' configs and every parameter's name and shape.
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
    """Fingerprint ``pipe``'s UNet, text encoder and VAE (see :class:`ModelFingerprint`).

    With ``base_model``, what concepts add is left out — the text encoder's token-embedding table and vocabulary
    size, and LoRA adapter layers (their wrapped weights count under their own names) — so the fingerprint stays the
    same when textual-inversion tokens or LoRA adapters are loaded (what a learned concept records of its model).
    """
    digest = hashlib.sha256()
    signature: list[float] = []
    table = pipe.text_encoder.get_input_embeddings().weight if base_model else None
    for module in (pipe.unet, pipe.text_encoder, pipe.vae):
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
