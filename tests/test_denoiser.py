import torch
from diffusers import DDIMScheduler, PNDMScheduler

from diffinv.denoiser import Schedule
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
