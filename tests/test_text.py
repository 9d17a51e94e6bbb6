import pytest
from PIL import Image

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


def test_multi_vector_textual_inversion_tokens_expand_like_diffusers():
    import torch

    from diffinv import edit, invert
    from diffinv.testing import tiny_pipeline

    pipe = tiny_pipeline(seed=0)  # its own: loading an embedding changes the tokenizer and the embedding matrix
    width = pipe.text_encoder.config.hidden_size
    vectors = torch.randn(3, width, generator=torch.Generator().manual_seed(0))
    pipe.load_textual_inversion({"<toy>": vectors}, token="<toy>")
    prompt = "a <toy> on a table"
    encoded = encode_prompt(pipe, prompt)
    assert encoded.text == prompt and encoded.n_tokens == 1 + 1 + 3 + 3 + 1  # BOS, a, <toy> x 3, on a table, EOS
    ids = pipe.tokenizer(pipe.maybe_convert_prompt(prompt, pipe.tokenizer), padding="max_length",
                         max_length=pipe.tokenizer.model_max_length, return_tensors="pt").input_ids  # fmt: skip
    assert torch.equal(encoded.embeds, pipe.text_encoder(ids)[0])  # what diffusers' pipeline conditions on
    row = pipe.tokenizer.convert_tokens_to_ids("<toy>_2")
    assert torch.equal(pipe.text_encoder.get_input_embeddings().weight[row], vectors[2])
    inversion = invert(pipe, Image.new("RGB", (64, 64), "white"), prompt, "prompt-tokens", num_inference_steps=2)
    assert inversion.settings.optimized_positions == encoded.n_tokens
    result = edit(pipe, inversion, "a <toy> on a chair", local_blend=["table", "chair"], output_type="pt")
    assert result.edit.shape == (1, 3, 64, 64)
