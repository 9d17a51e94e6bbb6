import pytest

from diffinv.bench.variants import parse_variant
from diffinv.cli import split_methods
from diffinv.errors import DiffinvError


def test_variant_options_and_presets():
    variant = parse_variant("prompt-tokens:tokens=all,steps=50,lr=0.1,inner=3")
    assert variant.method == "prompt-tokens" and variant.label == "prompt-tokens:tokens=all,steps=50,lr=0.1,inner=3"
    assert variant.config.tokens == "all" and variant.config.num_inference_steps == 50
    assert variant.config.optimization.learning_rate == 0.1 and variant.config.optimization.num_inner_steps == 3
    paper = parse_variant("prompt-tokens@paper")
    assert paper.method == "prompt-tokens" and paper.config.num_inference_steps == 25


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("magic", "unknown inversion method"),
        ("ddim:steps", "key=value"),
        ("ddim:steps=many", "needs a int"),
        ("ddim:colour=red", "keys"),
    ],
)
def test_bad_variants(spec, match):
    with pytest.raises(DiffinvError, match=match):
        parse_variant(spec)


def test_method_lists_keep_variant_options_together():
    assert split_methods("ddim,prompt-tokens:tokens=all,steps=50,null-text") == (
        "ddim",
        "prompt-tokens:tokens=all,steps=50",
        "null-text",
    )
