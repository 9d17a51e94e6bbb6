import pytest

from diffinv.bench.variants import parse_variant, split_methods
from diffinv.errors import DiffinvError
from diffinv.inversion import OptimizationConfig


def test_variant_options_and_presets():
    variant = parse_variant("prompt-tokens:tokens=all,steps=50,lr=0.1,inner=3")
    assert variant.method == "prompt-tokens" and variant.label == "prompt-tokens:tokens=all,steps=50,lr=0.1,inner=3"
    assert variant.config.tokens == "all" and variant.config.num_inference_steps == 50
    assert variant.config.optimization.learning_rate == 0.1 and variant.config.optimization.num_inner_steps == 3
    paper = parse_variant("prompt-tokens@paper")
    assert paper.method == "prompt-tokens" and paper.config.num_inference_steps == 25
    assert paper.config.optimization == OptimizationConfig()  # Mokady et al.'s optimiser
    assert parse_variant("prompt-tokens").config.optimization.learning_rate == 0.1  # our default
    tuned = parse_variant("prompt-tokens@paper:inner=5")
    assert tuned.config.optimization.num_inner_steps == 5 and tuned.config.optimization.learning_rate == 0.01


def test_variant_keys_are_the_config_fields_and_their_short_names():
    long = parse_variant("null-text:num_inference_steps=4,guidance_scale=3,num_inner_steps=2,learning_rate=0.2")
    short = parse_variant("null-text:steps=4,guidance=3,inner=2,lr=0.2")
    assert long.config == short.config and short.config.guidance_scale == 3.0
    assert parse_variant("prompt-tokens:pooled=false,lr_decay=0,eps=1e-4,growth=0").config.pooled is False
    assert parse_variant("prompt-tokens:eps=1e-4").config.optimization.early_stop_epsilon == 1e-4


@pytest.mark.parametrize(
    ("spec", "match"),
    [
        ("magic", "unknown inversion method"),
        ("ddim@paper", "presets of ddim: none"),
        ("prompt-tokens@best", "prompt-tokens@paper"),
        ("ddim:steps", "key=value"),
        ("ddim:steps=many", "needs a int"),
        ("ddim:colour=red", "keys"),
        ("ddim:inner=2", "keys num_inference_steps, guidance_scale, steps, guidance"),  # ddim optimises nothing
        ("prompt-tokens:pooled=maybe", "needs a bool"),
        ("prompt-tokens:tokens=some", "tokens must be"),
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


@pytest.mark.parametrize(
    ("config", "field", "value", "match"),
    [
        ("EditBenchConfig", "editors", (), "must name at least one item"),
        ("EditBenchConfig", "edits", ("recolor", "recolor"), "names recolor more than once"),
        ("EditBenchConfig", "methods", ("ddim", "ddim"), "names ddim more than once"),
        ("BenchConfig", "methods", (), "must name at least one item"),
        ("SDEditSweepConfig", "strengths", (0.5, 0.5), "names 0.5 more than once"),
        ("ConceptBenchConfig", "concepts", ("moon", "moon"), "names moon more than once"),
        ("ConceptBenchConfig", "shots", (), "must name at least one item"),
    ],
)
def test_job_lists_are_non_empty_and_name_each_item_once(config, field, value, match):
    from diffinv.bench import config as bench_config

    with pytest.raises(DiffinvError, match=match):
        getattr(bench_config, config)(**{field: value})
