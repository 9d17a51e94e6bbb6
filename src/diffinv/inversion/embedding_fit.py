"""Per-timestep embedding optimisation (Mokady et al. 2022, Alg. 1), shared by ``null-text`` and ``prompt-tokens``.

At denoising step i (latent x̄_i, starting from the DDIM trajectory's x*_T), a leading slice of one of the two
classifier-free-guidance embeddings is optimised so that the guided DDIM step lands on the trajectory:

    min_e  ‖ DDIM_step(x̄_i, ε_u + w (ε_c − ε_u)) − x*_{i+1} ‖²

``null-text`` optimises the whole unconditional embedding ∅_i (ε_u depends on it); ``prompt-tokens`` (the
reference paper) optimises only the first n positions of the conditional embedding (ε_c depends on them) and
leaves the padding positions and the unconditional embedding untouched. The slice is warm-started from the
previous step's solution; after the inner loop, x̄_{i+1} is the guided step with the optimised embedding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import torch
import torch.nn.functional as F
from torch import Tensor
from tqdm.auto import tqdm

if TYPE_CHECKING:
    from diffinv.inversion.base import InversionProblem


@dataclass(frozen=True)
class FitResult:
    """Per-step optimised embeddings ``(T, L, D)`` and, per step, inner iterations taken and final loss."""

    embeds: Tensor
    inner_steps: tuple[int, ...]
    final_losses: tuple[float, ...]


def fit_embeddings(
    problem: InversionProblem,
    trajectory: list[Tensor],
    *,
    slot: Literal["cond", "uncond"],
    n_positions: int,
) -> FitResult:
    """Optimise the first ``n_positions`` of the ``slot`` embedding at every step (see the module docstring).

    Args:
        problem: the prepared inversion.
        trajectory: ``T + 1`` latents from :func:`~diffinv.inversion.trajectory.ddim_trajectory`.
        slot: ``"uncond"`` (null-text) or ``"cond"`` (prompt tokens).
        n_positions: how many leading positions of that embedding are free (1 ≤ n ≤ L).
    """
    denoiser, config = problem.denoiser, problem.config
    opt = config.optimization
    guidance = config.guidance_scale
    fixed = problem.null_embeds if slot == "cond" else problem.prompt_embeds
    start = problem.prompt_embeds if slot == "cond" else problem.null_embeds
    head, tail = start[:, :n_positions].clone(), start[:, n_positions:]
    latent = trajectory[0]
    per_step, inner_steps, losses = [], [], []
    bar = tqdm(total=len(denoiser.schedule), disable=not problem.progress, desc=f"optimising {slot}", leave=False)
    for i in range(len(denoiser.schedule)):
        head = head.detach().requires_grad_(True)
        optimizer = torch.optim.Adam([head], lr=opt.learning_rate_at(i))
        with torch.no_grad():
            fixed_eps = denoiser.epsilon(latent, i, fixed)
        taken, loss_value = 0, float("nan")
        for _ in range(opt.num_inner_steps):
            free_eps = denoiser.epsilon(latent, i, torch.cat([head, tail], dim=1))
            cond_eps, uncond_eps = (free_eps, fixed_eps) if slot == "cond" else (fixed_eps, free_eps)
            eps = uncond_eps + guidance * (cond_eps - uncond_eps)
            loss = F.mse_loss(denoiser.step(latent, eps, i), trajectory[i + 1])
            optimizer.zero_grad(set_to_none=True)
            loss.backward(inputs=[head])
            optimizer.step()
            taken, loss_value = taken + 1, loss.item()
            if loss_value < opt.stop_threshold(i):
                break
        embeds = torch.cat([head.detach(), tail], dim=1)
        per_step.append(embeds)
        inner_steps.append(taken)
        losses.append(loss_value)
        with torch.no_grad():
            cond, uncond = (embeds, fixed) if slot == "cond" else (fixed, embeds)
            latent = denoiser.step(latent, denoiser.guided_epsilon(latent, i, cond, uncond, guidance), i)
        bar.update()
        bar.set_postfix(loss=f"{loss_value:.2e}")
    bar.close()
    return FitResult(torch.cat(per_step), tuple(inner_steps), tuple(losses))
