"""Per-timestep embedding optimisation (Mokady et al. 2022, Alg. 1), shared by ``null-text`` and ``prompt-tokens``.

At denoising step i (latent x̄_i, starting from the DDIM trajectory's x*_T), a leading slice of one of the two
classifier-free-guidance embeddings is optimised so that the guided DDIM step lands on the trajectory:

    min_e  ‖ DDIM_step(x̄_i, ε_u + w (ε_c − ε_u)) − x*_{i+1} ‖²

``null-text`` optimises the whole unconditional embedding ∅_i (ε_u depends on it); ``prompt-tokens`` (the
reference paper) optimises only the first n positions of the conditional embedding (ε_c depends on them) and
leaves the padding positions and the unconditional embedding untouched. Which rows of an embedding are free is a
mask (an SDXL embedding's pooled row, :mod:`diffinv.conditioning`, is free or not on its own). The free rows are
warm-started from the previous step's solution; after the inner loop, x̄_{i+1} is the guided step with the optimised
embedding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor
from tqdm.auto import tqdm

from diffinv.denoiser import Denoiser
from diffinv.inversion.config import OptimizingInversionConfig


@dataclass(frozen=True)
class FitResult:
    """Per-step optimised embeddings ``(T, B, L, D)``, the rows that were free ``(B, L)`` and, per image, per step,
    the inner iterations taken and the final loss."""

    embeds: Tensor
    free: Tensor
    inner_steps: tuple[tuple[int, ...], ...]
    final_losses: tuple[tuple[float, ...], ...]


def fit_embeddings(
    denoiser: Denoiser,
    trajectory: list[Tensor],
    *,
    prompt_embeds: Tensor,
    null_embeds: Tensor,
    config: OptimizingInversionConfig,
    slot: Literal["cond", "uncond"],
    free: Tensor,
    progress: bool = False,
) -> FitResult:
    """Optimise the rows ``free[b]`` of the ``slot`` embedding of every image ``b`` at every step (see the module
    docstring).

    The images of a batch share each UNet call but not their optimisation: the loss is the sum of the per-image
    losses (so each image gets the gradient it would get alone, and Adam is elementwise), rows not free for an image
    are held at their start value, and an image that reached its early-stop threshold leaves the UNet batch and its
    embedding stays exactly where its last step put it (Adam's momentum would otherwise keep moving it). Batched
    results therefore equal one-at-a-time results up to floating-point rounding.

    Args:
        denoiser: the UNet and its T-step schedule.
        trajectory: ``T + 1`` latents ``(B, C, h, w)`` from :func:`~diffinv.inversion.trajectory.ddim_trajectory`.
        prompt_embeds / null_embeds: ``(B, L, D)`` the conditional and unconditional embeddings of the ``B`` images.
        config: the optimiser and the guidance scale the guided step uses.
        slot: ``"uncond"`` (null-text) or ``"cond"`` (prompt tokens).
        free: ``(B, L)`` bool, per image the rows of that embedding that are optimised (at least one).
        progress: show a progress bar.
    """
    opt = config.optimization
    guidance = config.guidance_scale
    fixed = null_embeds if slot == "cond" else prompt_embeds
    initial = prompt_embeds if slot == "cond" else null_embeds
    batch = initial.shape[0]
    if free.shape != initial.shape[:2] or free.dtype != torch.bool or not free.any(1).all():
        raise ValueError(f"free rows {tuple(free.shape)} do not fit embeddings {tuple(initial.shape)}")
    rows_free = free.to(initial.device)[..., None]  # (B, L, 1)
    head = initial.clone()
    latent = trajectory[0]
    per_step, inner_steps, losses = [], [], []
    bar = tqdm(total=len(denoiser.schedule), disable=not progress, desc=f"optimising {slot}", leave=False)
    for i in range(len(denoiser.schedule)):
        head = head.detach().requires_grad_(True)
        optimizer = torch.optim.Adam([head], lr=opt.learning_rate_at(i))
        with torch.no_grad():
            fixed_eps = denoiser.epsilon(latent, i, fixed)
        active = torch.ones(batch, dtype=torch.bool)
        frozen = torch.zeros_like(head, requires_grad=False)
        taken, loss_values = [0] * batch, [float("nan")] * batch
        for _ in range(opt.num_inner_steps):
            rows = active.nonzero().flatten()
            if not len(rows):
                break
            index = rows.to(initial.device)
            embeds = torch.where(rows_free[index], head[index], initial[index])
            free_eps = denoiser.epsilon(latent[index], i, embeds, rows.tolist())
            cond_eps, uncond_eps = (free_eps, fixed_eps[index]) if slot == "cond" else (fixed_eps[index], free_eps)
            eps = uncond_eps + guidance * (cond_eps - uncond_eps)
            errors = (denoiser.step(latent[index], eps, i) - trajectory[i + 1][index]).pow(2).flatten(1).mean(1)
            optimizer.zero_grad(set_to_none=True)
            errors.sum().backward(inputs=[head])
            optimizer.step()
            with torch.no_grad():
                stopped = ~active.to(initial.device)
                head[stopped] = frozen[stopped]  # a stopped image does not move again
                threshold = opt.stop_threshold(i)
                for row, value in zip(rows.tolist(), errors.detach().tolist(), strict=True):
                    taken[row], loss_values[row] = taken[row] + 1, value
                    if value < threshold:
                        active[row] = False
                        frozen[row] = head[row]
        embeds = torch.where(rows_free, head.detach(), initial)
        per_step.append(embeds)
        inner_steps.append(taken)
        losses.append(loss_values)
        with torch.no_grad():
            cond, uncond = (embeds, fixed) if slot == "cond" else (fixed, embeds)
            latent = denoiser.step(latent, denoiser.guided_epsilon(latent, i, cond, uncond, guidance), i)
        bar.update()
        bar.set_postfix(loss=f"{sum(loss_values) / batch:.2e}")
    bar.close()
    return FitResult(
        torch.stack(per_step),
        free.cpu(),
        tuple(zip(*inner_steps, strict=True)),
        tuple(zip(*losses, strict=True)),
    )
