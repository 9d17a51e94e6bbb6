"""Editing's settings: one Config each (defaults stated once, help for every field, typed dict round trip), the
prompt-to-prompt modes as a registry, and SDEdit's config given to the API."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from conftest import PROMPT
from diffinv import sdedit
from diffinv.config import SamplingConfig, init_fields
from diffinv.editing.config import EditConfig, SDEditConfig
from diffinv.editing.registry import MODES
from diffinv.errors import DiffinvError


@pytest.mark.parametrize("cls", [EditConfig, SDEditConfig])
def test_configs_round_trip_and_every_field_has_help(cls):
    config = cls()
    assert cls.from_dict(config.to_dict()) == config
    assert all(cls.help(name) for name in init_fields(cls))


def test_edit_config_reads_its_dict_form_typed():
    config = EditConfig.from_dict({"mode": "reweight", "reweight": [["red", 2]], "local_blend": ["red"]})
    assert config.reweight == (("red", 2.0),) and config.local_blend == ("red",)
    with pytest.raises(DiffinvError, match="embedding_transfer must be one of"):
        EditConfig.from_dict({"embedding_transfer": "copy"})
    with pytest.raises(DiffinvError, match="unknown setting"):
        EditConfig.from_dict({"strength": 0.5})


def test_modes_are_a_registry_and_say_what_they_need():
    assert MODES.names() == ("replace", "refine", "reweight")
    with pytest.raises(DiffinvError, match="unknown edit mode 'swap'; choose one of replace, refine, reweight"):
        EditConfig(mode="swap")
    assert dict(MODES["reweight"].requires) == {"reweight": MODES["reweight"].requires["reweight"]}
    with pytest.raises(DiffinvError, match="needs words to reweight"):
        EditConfig(mode="reweight")
    assert EditConfig(mode="reweight", reweight=(("red", 2.0),)).mode == "reweight"


def test_sdedit_shares_the_sampler_defaults():
    assert issubclass(SDEditConfig, SamplingConfig)
    sampling = {f.name for f in dataclasses.fields(SamplingConfig)}
    assert {name: SDEditConfig.default(name) for name in sampling} == SamplingConfig().to_dict()


def test_sdedit_takes_a_config_and_keyword_overrides(pipe, photo):
    def run(**kwargs):
        return sdedit(pipe, photo, PROMPT, generator=torch.Generator().manual_seed(0), output_type="pt", **kwargs)

    config = SDEditConfig(strength=0.5, num_inference_steps=6)
    assert torch.equal(run(config=config), run(strength=0.5, num_inference_steps=6))
    assert torch.equal(run(config=config, strength=0.8), run(strength=0.8, num_inference_steps=6))
    with pytest.raises(DiffinvError, match="config must be a SDEditConfig"):
        run(config=EditConfig())
