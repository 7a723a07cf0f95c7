"""``need_weights=True`` on the models: one (B, H, T, S) tensor per layer, equal to the weights
each attention computes (checked through its hook_pattern), and the same logits."""

import pytest
import torch

from attnlab import GPT, Encoder, EncoderConfig, EncoderDecoder, EncoderDecoderConfig, GPTConfig
from attnlab.hooks import run_with_cache


def test_gpt_attentions_are_each_layers_pattern():
    gpt = GPT(GPTConfig(vocab_size=20, max_len=16, n_layers=2, n_heads=2, d_model=16)).eval()
    ids = torch.randint(0, 20, (2, 6))
    out, cache = run_with_cache(gpt, ids, need_weights=True, names=lambda n: "pattern" in n)
    assert out.attentions is not None and len(out.attentions) == 2
    for i, weights in enumerate(out.attentions):
        assert weights.shape == (2, 2, 6, 6)
        torch.testing.assert_close(weights, cache[f"layers.{i}.self_attn.hook_pattern"])
        assert torch.all(weights.triu(1) == 0)  # causal
    torch.testing.assert_close(out.logits, gpt(ids).logits, atol=1e-6, rtol=0)
    assert gpt(ids).attentions is None


def test_gpt_attentions_with_a_kv_cache_cover_every_cached_key():
    gpt = GPT(GPTConfig(vocab_size=20, max_len=16, n_layers=1, n_heads=2, d_model=16)).eval()
    cache = gpt.new_kv_cache(1)
    gpt(torch.randint(0, 20, (1, 4)), kv_cache=cache)
    out = gpt(torch.randint(0, 20, (1, 1)), kv_cache=cache, need_weights=True)
    assert out.attentions[0].shape == (1, 2, 1, 5)
    torch.testing.assert_close(out.attentions[0].sum(-1), torch.ones(1, 2, 1))


def test_encoder_attentions_ignore_padding():
    enc = Encoder(EncoderConfig(vocab_size=20, max_len=16, n_layers=2, n_heads=2, d_model=16,
                                d_ff=32)).eval()  # fmt: skip
    ids = torch.randint(1, 20, (2, 5))
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    out = enc(ids, mask, need_weights=True)
    assert len(out.attentions) == 2 and out.attentions[0].shape == (2, 2, 5, 5)
    assert torch.all(out.attentions[1][1, :, :, 3:] == 0)
    assert enc(ids, mask).attentions is None


def test_encoder_decoder_returns_hugging_face_named_attentions():
    config = EncoderDecoderConfig(src_vocab_size=20, tgt_vocab_size=21, max_len=16, n_heads=2,
                                  d_model=16, d_ff=32, n_encoder_layers=2, n_decoder_layers=3,
                                  dropout=0.0)  # fmt: skip
    model = EncoderDecoder(config).eval()
    src, tgt = torch.randint(1, 20, (2, 7)), torch.randint(0, 21, (2, 4))
    is_real = torch.ones(2, 7, dtype=torch.bool)
    is_real[0, 5:] = False
    out = model(src, tgt, attention_mask=is_real, need_weights=True)
    assert [w.shape for w in out.encoder_attentions] == [(2, 2, 7, 7)] * 2
    assert [w.shape for w in out.decoder_attentions] == [(2, 2, 4, 4)] * 3
    assert [w.shape for w in out.cross_attentions] == [(2, 2, 4, 7)] * 3
    assert torch.all(out.cross_attentions[0][0, :, :, 5:] == 0)
    assert out.attentions is None
    plain = model(src, tgt, attention_mask=is_real)
    torch.testing.assert_close(out.logits, plain.logits, atol=1e-6, rtol=0)
    assert plain.cross_attentions is None


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_target_padding_is_masked(norm_first):
    config = EncoderDecoderConfig(src_vocab_size=20, tgt_vocab_size=21, max_len=16, n_heads=2,
                                  d_model=16, d_ff=32, n_encoder_layers=1, n_decoder_layers=1,
                                  dropout=0.0, norm_first=norm_first)  # fmt: skip
    model = EncoderDecoder(config).eval()
    src, tgt = torch.randint(1, 20, (1, 5)), torch.randint(0, 21, (1, 4))
    real = torch.tensor([[True, False, True, True]])
    out = model(src, tgt, decoder_attention_mask=real, need_weights=True)
    assert torch.all(out.decoder_attentions[0][..., 1] == 0)


def test_a_layer_that_loses_its_weights_is_an_error_not_a_shifted_tuple():
    from attnlab import GPT, GPTConfig

    gpt = GPT(GPTConfig(vocab_size=20, max_len=8, n_layers=3, n_heads=2, d_model=8)).eval()

    def drop_weights(module, inputs, out):
        return out.hidden_state if isinstance(out, tuple) else out

    gpt.layers[0].register_forward_hook(drop_weights)
    ids = torch.randint(0, 20, (3, 5))
    with pytest.raises(ValueError, match="need_weights=True, but a layer returned Tensor"):
        gpt(ids, need_weights=True)
    assert gpt(ids).logits.shape == (3, 5, 20)  # without weights the hook is harmless
