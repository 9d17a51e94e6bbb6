"""``diffinv doctor``: what this installation has — versions, devices and dtypes, the built-in models' checksums and
where model and metric weights are looked up (and whether they are there). Loads no model.
"""

from __future__ import annotations

import hashlib
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = (
    "torch",
    "diffusers",
    "transformers",
    "accelerate",
    "safetensors",
    "torchmetrics",
    "numpy",
    "pillow",
    "scikit-image",
    "scipy",
    "matplotlib",
)


def folder_sha256(folder: Path) -> str:
    """SHA-256 over every file of ``folder``: relative paths and contents, in sorted order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with path.open("rb") as file:
            for block in iter(lambda: file.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _devices() -> dict[str, dict[str, Any]]:
    import torch

    devices: dict[str, dict[str, Any]] = {"cpu": {"available": True, "dtypes": ["fp32", "bf16", "fp16"]}}
    cuda = torch.cuda.is_available()
    devices["cuda"] = {"available": cuda}
    if cuda:
        devices["cuda"]["names"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        devices["cuda"]["dtypes"] = ["fp32", "fp16"] + (["bf16"] if torch.cuda.is_bf16_supported() else [])
    mps = torch.backends.mps.is_available()
    devices["mps"] = {"available": mps, **({"dtypes": ["fp32", "fp16"]} if mps else {})}
    return devices


def _weights() -> dict[str, dict[str, Any]]:
    import torch
    from huggingface_hub import constants, try_to_load_from_cache

    from diffinv.metrics import ALEXNET_WEIGHTS, DEFAULT_CLIP

    alexnet = Path(torch.hub.get_dir()) / "checkpoints" / ALEXNET_WEIGHTS
    clip = try_to_load_from_cache(DEFAULT_CLIP, "config.json")
    return {
        "hub cache": {"path": str(constants.HF_HUB_CACHE), "present": Path(constants.HF_HUB_CACHE).is_dir()},
        "LPIPS AlexNet": {"path": str(alexnet), "present": alexnet.is_file(), "option": "--lpips-weights DIR"},
        "CLIP": {
            "path": f"{DEFAULT_CLIP} in the hub cache",
            "present": isinstance(clip, str),
            "option": "--clip-model",
        },
    }


def report() -> dict[str, Any]:
    """Everything ``diffinv doctor`` shows, as one JSON-ready dict."""
    from diffinv import __version__
    from diffinv.pipelines import BUILTIN_MODELS, builtin_model_path

    models = {}
    for name in BUILTIN_MODELS:
        path = builtin_model_path(name)
        models[name] = {"path": str(path), "sha256": folder_sha256(path) if path.is_dir() else None}
    return {
        "diffinv": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": {name: _version(name) for name in PACKAGES},
        "devices": _devices(),
        "builtin_models": models,
        "weights": _weights(),
    }


def format_report(data: dict[str, Any]) -> str:
    """The report as one screen of text."""
    lines = [f"diffinv {data['diffinv']} · Python {data['python']} · {data['platform']}"]
    packages = data["packages"]
    lines.append("packages: " + ", ".join(f"{k} {v}" for k, v in packages.items() if v))
    missing = [k for k, v in packages.items() if not v]
    if missing:
        lines.append("missing:  " + ", ".join(missing))
    for name, device in data["devices"].items():
        if device["available"]:
            names = f" ({', '.join(device['names'])})" if device.get("names") else ""
            lines.append(f"device {name}{names}: --dtype {' | '.join(device['dtypes'])}")
        else:
            lines.append(f"device {name}: not available")
    for name, model in data["builtin_models"].items():
        lines.append(f"model {name}: {model['path']}  sha256 {model['sha256']}")
    for name, entry in data["weights"].items():
        state = "present" if entry["present"] else "missing"
        option = f" (or {entry['option']})" if entry.get("option") else ""
        lines.append(f"{name}: {state} at {entry['path']}{option}")
    return "\n".join(lines)
