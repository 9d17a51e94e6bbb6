import pytest

from diffinv.bench.token_influence import plot_token_influence, token_influence
from diffinv.errors import DiffinvError


@pytest.mark.parametrize("replacement", ["zero", "pad"])
def test_token_influence_curve(pipe, tmp_path, replacement):
    result = token_influence(pipe, "a red circle", replacement=replacement, num_inference_steps=2)
    assert len(result.changes) == 78 and result.n_tokens == 5
    assert result.changes[-1] == 0.0 and result.psnrs[-1] == float("inf")
    assert result.changes[0] > 0  # replacing every position changes the image
    assert 0 <= result.vanishes_at <= 77
    assert all(c < result.threshold for c in result.changes[result.vanishes_at :])
    assert plot_token_influence([result], tmp_path / "t.png").is_file()


def test_unknown_replacement(pipe):
    with pytest.raises(DiffinvError, match="replacement"):
        token_influence(pipe, "x", replacement="drop")
