import pytest
import torch
from transformers import BertConfig, BertModel, GPT2Config, GPT2LMHeadModel

from attnlab import GPT, EncoderDecoder, EncoderDecoderConfig, GPTConfig
from attnlab.inspection.capture import capture
from attnlab.inspection.pretrained import load_minilm


def test_capture_on_gpt_names_layers_and_leaves_outputs_bit_identical():
    gpt = GPT(GPTConfig(vocab_size=40, max_len=32, n_layers=3, n_heads=4, d_model=32)).eval()
    ids = torch.randint(0, 40, (2, 12))
    with torch.no_grad():
        plain = gpt(ids).logits
        with capture(gpt) as maps:
            captured = gpt(ids).logits
    assert torch.equal(plain, captured)
    assert list(maps) == [f"layers.{i}.self_attn" for i in range(3)]
    # exact: compare with the weights the layer returns when asked
    x = gpt.token_embedding(ids) + gpt.position(12)
    layer = gpt.layers[0]
    with torch.no_grad():
        _, w = layer.self_attn(layer.norm1(x), causal=True, need_weights=True)
    torch.testing.assert_close(maps["layers.0.self_attn"].dense(), w, atol=1e-5, rtol=1e-5)


def test_capture_on_encoder_decoder_includes_cross_attention():
    config = EncoderDecoderConfig(
        src_vocab_size=20, tgt_vocab_size=20, max_len=16, n_encoder_layers=1,
        n_decoder_layers=1, n_heads=2, d_model=16, d_ff=32, dropout=0.0,
    )  # fmt: skip
    model = EncoderDecoder(config).eval()
    with torch.no_grad(), capture(model) as maps:
        model(torch.randint(0, 20, (1, 7)), torch.randint(0, 20, (1, 5)))
    assert set(maps) == {
        "encoder.layers.0.self_attn",
        "decoder.layers.0.self_attn",
        "decoder.layers.0.cross_attn",
    }
    assert maps["decoder.layers.0.cross_attn"].shape == (1, 2, 5, 7)


def test_capture_on_real_minilm_equals_eager_output_attentions():
    sdpa, tokenizer = load_minilm("sdpa")
    eager, _ = load_minilm("eager")
    enc = tokenizer(
        ["The animal didn't cross the street because it was tired", "the cat sat"],
        padding=True, return_tensors="pt",
    )  # fmt: skip
    with torch.no_grad():
        expected = eager(**enc, output_attentions=True).attentions
        with capture(sdpa) as maps:
            sdpa(**enc)
    assert sdpa.config._attn_implementation == "sdpa"  # not switched to eager
    real = enc["attention_mask"].bool()
    assert len(maps) == 6
    for amap, ref in zip(maps.values(), expected, strict=True):
        torch.testing.assert_close(
            amap.dense().transpose(1, 2)[real], ref.transpose(1, 2)[real], atol=1e-5, rtol=1e-5
        )


def test_capture_on_hugging_face_gpt2_equals_eager():
    sizes = {"vocab_size": 50, "n_positions": 32, "n_embd": 32, "n_layer": 2, "n_head": 4}
    torch.manual_seed(0)
    sdpa = GPT2LMHeadModel(GPT2Config(**sizes, attn_implementation="sdpa")).eval()
    eager = GPT2LMHeadModel(GPT2Config(**sizes, attn_implementation="eager")).eval()
    eager.load_state_dict(sdpa.state_dict())
    ids = torch.randint(0, 50, (2, 10))
    with torch.no_grad():
        expected = eager(ids, output_attentions=True).attentions
        with capture(sdpa) as maps:
            sdpa(ids)
    assert list(maps) == ["transformer.h.0.attn", "transformer.h.1.attn"]
    for amap, ref in zip(maps.values(), expected, strict=True):
        torch.testing.assert_close(amap.dense(), ref, atol=1e-5, rtol=1e-5)


def test_unsupported_model_is_a_clear_error():
    with (
        pytest.raises(ValueError, match="cannot capture attention from Linear"),
        capture(torch.nn.Linear(2, 2)),
    ):
        pass


def test_eager_hugging_face_model_is_captured_and_left_eager():
    model = BertModel(BertConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                 intermediate_size=32, attn_implementation="eager")).eval()  # fmt: skip
    ids = torch.randint(0, 100, (1, 5))
    with torch.no_grad():
        want = model(ids, output_attentions=True).attentions[0]
        with capture(model) as maps:
            model(ids)
    assert model.config._attn_implementation == "eager"
    torch.testing.assert_close(
        maps["encoder.layer.0.attention.self"].rows(), want, rtol=0, atol=1e-6
    )


@pytest.mark.slow
def test_capture_memory_is_a_small_fraction_of_full_maps():
    from attnlab import Encoder, EncoderConfig

    n = 2048
    model = Encoder(EncoderConfig(vocab_size=100, max_len=n, n_layers=6, n_heads=12,
                                  d_model=384, d_ff=1536)).eval()  # fmt: skip
    with torch.no_grad(), capture(model) as maps:
        model(torch.randint(0, 100, (1, n)))
    full = 6 * 12 * n * n * 4  # six (1, 12, N, N) float32 maps
    assert len(maps) == 6
    assert maps.nbytes < full / 10


def test_empty_capture_warns_instead_of_returning_nothing_silently():
    gpt = GPT(GPTConfig(vocab_size=10, max_len=8, n_layers=1, n_heads=2, d_model=8))
    expected = pytest.warns(UserWarning, match="capture recorded no attention call from GPT")
    with expected, capture(gpt):
        pass  # the model is never run inside the block
