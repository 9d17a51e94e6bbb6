import pytest
import torch
from diffusers import DDIMScheduler, PNDMScheduler

from diffinv.denoiser import Denoiser, Schedule
from diffinv.testing import SD_SCHEDULER_CONFIG


def test_schedule_matches_diffusers_ddim():
    schedule = Schedule.from_config(DDIMScheduler(**SD_SCHEDULER_CONFIG).config, 50)
    reference = DDIMScheduler(**SD_SCHEDULER_CONFIG)
    reference.set_timesteps(50)
    assert torch.equal(schedule.timesteps, reference.timesteps.long())
    assert schedule.alpha(0) == float(reference.alphas_cumprod[reference.timesteps[0]])
    assert schedule.alpha_after(49) == float(reference.final_alpha_cumprod)
    assert schedule.alpha_after(0) == schedule.alpha(1)
    assert len(schedule) == 50


def test_schedule_is_independent_of_the_scheduler_class():
    shared = {k: v for k, v in SD_SCHEDULER_CONFIG.items() if k in ("num_train_timesteps", "beta_start", "beta_end")}
    pndm = Schedule.from_config(PNDMScheduler(**shared, beta_schedule="scaled_linear", steps_offset=1).config, 20)
    ddim = Schedule.from_config(DDIMScheduler(**SD_SCHEDULER_CONFIG).config, 20)
    assert torch.equal(pndm.timesteps, ddim.timesteps) and torch.equal(pndm.alphas, ddim.alphas)


def test_prediction_type_is_read_from_the_config():
    config = DDIMScheduler(**SD_SCHEDULER_CONFIG, prediction_type="v_prediction").config
    assert Schedule.from_config(config, 10).prediction_type == "v_prediction"


def test_training_schedule_and_per_sample_steps_match_single_steps(pipe):
    schedule = Schedule.training(pipe.scheduler.config)
    assert len(schedule) == 1000 and schedule.timesteps[0] == 999 and schedule.timesteps[-1] == 0
    assert schedule.alpha(0) == pytest.approx(float(pipe.scheduler.alphas_cumprod[999]))
    denoiser = Denoiser(pipe.unet, schedule)
    latents = torch.randn(3, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    embeds = torch.randn(3, 77, 32, generator=torch.Generator().manual_seed(1))
    index = torch.tensor([5, 500, 990])
    together = denoiser.epsilon(latents, index, embeds)
    for row, i in enumerate(index.tolist()):
        alone = denoiser.epsilon(latents[row : row + 1], i, embeds[row : row + 1])
        torch.testing.assert_close(together[row : row + 1], alone, rtol=1e-5, atol=1e-6)


def test_denoising_loss_is_ddpm_simple_loss(pipe):
    denoiser = Denoiser(pipe.unet, Schedule.training(pipe.scheduler.config))
    clean = torch.randn(2, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    embeds = torch.randn(2, 77, 32, generator=torch.Generator().manual_seed(1)).requires_grad_()
    loss = denoiser.denoising_loss(clean, embeds, torch.Generator().manual_seed(7))
    draw = torch.Generator().manual_seed(7)
    index = torch.randint(1000, (2,), generator=draw)
    noise = torch.randn(clean.shape, generator=draw)
    alpha = pipe.scheduler.alphas_cumprod[999 - index].view(-1, 1, 1, 1)
    noisy = alpha.sqrt() * clean + (1 - alpha).sqrt() * noise
    with torch.no_grad():
        predicted = pipe.unet(noisy, 999 - index, encoder_hidden_states=embeds).sample
    assert loss.shape == (2,)
    torch.testing.assert_close(loss.detach(), (predicted - noise).pow(2).mean((1, 2, 3)), rtol=1e-5, atol=1e-7)
    loss.sum().backward()
    assert embeds.grad is not None and embeds.grad.abs().sum() > 0


def test_a_schedule_past_the_training_steps_is_refused():
    """SD's config (leading spacing, steps_offset 1) puts step 1000 of 1000 at timestep 1000: one past the table."""
    from diffinv.errors import DiffinvError

    assert int(Schedule.from_config(SD_SCHEDULER_CONFIG, 999).timesteps.max()) == 999
    with pytest.raises(DiffinvError, match="puts a timestep at 1000"):
        Schedule.from_config(SD_SCHEDULER_CONFIG, 1000)
    with pytest.raises(DiffinvError, match="outside its 1000 training steps"):
        Schedule.from_config({**SD_SCHEDULER_CONFIG, "steps_offset": 5000}, 10)
