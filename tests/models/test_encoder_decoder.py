import pytest
import torch

from attnlab import EncoderDecoder, EncoderDecoderConfig, MultiHeadAttention


@pytest.fixture
def model():
    config = EncoderDecoderConfig(
        src_vocab_size=30, tgt_vocab_size=40, max_len=24, n_encoder_layers=2,
        n_decoder_layers=2, n_heads=4, d_model=32, d_ff=64, dropout=0.0,
    )  # fmt: skip
    return EncoderDecoder(config).eval()


def test_decoder_is_causal(model):
    src = torch.randint(0, 30, (2, 8))
    tgt = torch.randint(0, 40, (2, 10))
    changed = tgt.clone()
    changed[:, 5:] = (changed[:, 5:] + 1) % 40
    with torch.no_grad():
        a, b = model(src, tgt).logits, model(src, changed).logits
    torch.testing.assert_close(a[:, :5], b[:, :5], atol=0, rtol=0)


def test_source_padding_is_ignored(model):
    src = torch.randint(1, 30, (1, 6))
    padded = torch.cat((src, torch.zeros(1, 3, dtype=torch.long)), 1)
    is_real = torch.tensor([[True] * 6 + [False] * 3])
    tgt = torch.randint(0, 40, (1, 5))
    with torch.no_grad():
        a = model(src, tgt).logits
        b = model(padded, tgt, attention_mask=is_real).logits
    torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_greedy_generation_equals_argmax_of_full_decoding(model):
    src = torch.randint(0, 30, (2, 7))
    out = model.generate(src, 8, bos_id=1, eos_id=2)
    with torch.no_grad():
        logits = model(src, out[:, :-1]).logits
    finished = (out[:, :-1] == 2).cumsum(1) > 0
    greedy = logits.argmax(-1)
    assert torch.equal(out[:, 1:][~finished], greedy[~finished])


def test_cross_and_self_attention_are_the_public_class(model):
    layer = model.decoder.layers[0]
    assert isinstance(layer.cross_attn, MultiHeadAttention)
    assert isinstance(model.encoder.layers[1].self_attn, MultiHeadAttention)


def test_mismatched_batch_sizes_are_refused(model):
    with pytest.raises(ValueError, match="src_ids has 2, tgt_ids has 3"):
        model(torch.zeros(2, 4, dtype=torch.long), torch.zeros(3, 4, dtype=torch.long))


def test_target_out_of_vocabulary_is_refused(model):
    with pytest.raises(ValueError, match=r"tgt_ids must lie in \[0, vocab_size=40\)"):
        model(torch.zeros(1, 4, dtype=torch.long), torch.full((1, 4), 40))


def test_output_projection_is_tied(model):
    assert model.output.weight is model.decoder.embedding.weight
