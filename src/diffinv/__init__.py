"""diffinv: make real photos editable with Stable Diffusion-family models.

Quick start::

    from diffinv import load_pipeline, invert, reconstruct, Inversion
    pipe = load_pipeline("path/or/name")
    inv = invert(pipe, "photo.jpg", "a cat sitting on a sofa", method="prompt-tokens")
    inv.save("cat.inv.safetensors")
    image = reconstruct(pipe, Inversion.load("cat.inv.safetensors", pipe), negative_prompt="blurry")[0]

Names are imported lazily (PEP 562) so that ``diffinv.cli`` can configure logging before torch/diffusers load.
"""

from __future__ import annotations

from diffinv.lazy import lazy_exports

__version__ = "0.1.0"

_EXPORTS = {
    "edit": "diffinv.api",
    "sdedit": "diffinv.api",
    "EditConfig": "diffinv.editing",
    "EditResult": "diffinv.editing",
    "generate": "diffinv.api",
    "learn_concept": "diffinv.api",
    "Concept": "diffinv.personalization",
    "load_concept": "diffinv.personalization",
    "unload_concept": "diffinv.personalization",
    "invert": "diffinv.api",
    "reconstruct": "diffinv.api",
    "DiffinvError": "diffinv.errors",
    "METHODS": "diffinv.inversion",
    "Inversion": "diffinv.inversion",
    "InversionConfig": "diffinv.inversion",
    "OptimizationConfig": "diffinv.inversion",
    "OptimizingInversionConfig": "diffinv.inversion",
    "PromptTokensConfig": "diffinv.inversion",
    "fingerprint": "diffinv.pipelines",
    "load_pipeline": "diffinv.pipelines",
}
__all__ = sorted(_EXPORTS)

__getattr__ = lazy_exports(__name__, _EXPORTS)
