import pytest

from diffinv.errors import DiffinvError
from diffinv.text import PromptTruncatedWarning, encode_prompt


def test_semantic_slice_counts_bos_tokens_and_first_eos(pipe):
    encoded = encode_prompt(pipe, "a woman in a space suit")
    assert encoded.n_tokens == 2 + 6
    assert encoded.embeds.shape == (1, 77, 32)
    assert encoded.dropped_tokens == 0


def test_long_prompts_are_truncated_with_a_count_or_refused(pipe):
    prompt = " ".join(["cat"] * 100)
    with pytest.warns(PromptTruncatedWarning, match="last 25 tokens are dropped"):
        encoded = encode_prompt(pipe, prompt)
    assert encoded.n_tokens == 77 and encoded.dropped_tokens == 25
    with pytest.raises(DiffinvError, match="102 tokens long"):
        encode_prompt(pipe, prompt, strict=True)
