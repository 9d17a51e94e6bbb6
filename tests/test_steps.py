import pytest
import torch

from diffinv import steps


@pytest.mark.parametrize("prediction_type", steps.PREDICTION_TYPES)
def test_conversions_are_consistent(prediction_type):
    g = torch.Generator().manual_seed(0)
    x0, eps = torch.randn(2, 4, 8, 8, generator=g, dtype=torch.float64).unbind(0)
    alpha = torch.tensor(0.3, dtype=torch.float64)
    sample = alpha.sqrt() * x0 + (1 - alpha).sqrt() * eps
    output = {"epsilon": eps, "sample": x0, "v_prediction": alpha.sqrt() * eps - (1 - alpha).sqrt() * x0}[
        prediction_type
    ]
    torch.testing.assert_close(steps.predict_epsilon(output, sample, alpha, prediction_type), eps)
    torch.testing.assert_close(steps.predict_original(output, sample, alpha, prediction_type), x0)


def test_ddim_transfer_round_trip_and_exact_noising():
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(2, 1, 4, 6, 6, generator=g, dtype=torch.float64).unbind(0)
    a_lo, a_hi = torch.tensor(0.9, dtype=torch.float64), torch.tensor(0.2, dtype=torch.float64)
    x_lo = a_lo.sqrt() * x0 + (1 - a_lo).sqrt() * eps
    x_hi = steps.ddim_transfer(x_lo, eps, a_lo, a_hi)
    torch.testing.assert_close(x_hi, a_hi.sqrt() * x0 + (1 - a_hi).sqrt() * eps)
    torch.testing.assert_close(steps.ddim_transfer(x_hi, eps, a_hi, a_lo), x_lo)


def test_classifier_free_guidance():
    u, c = torch.zeros(3), torch.ones(3)
    assert torch.equal(steps.classifier_free_guidance(u, c, 1.0), c)
    assert torch.equal(steps.classifier_free_guidance(u, c, 7.5), torch.full((3,), 7.5))


def test_unknown_prediction_type_raises():
    with pytest.raises(ValueError, match="prediction_type"):
        steps.predict_epsilon(torch.zeros(1), torch.zeros(1), torch.tensor(0.5), "flow")
