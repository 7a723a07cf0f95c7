"""AttentionBias: the canonical form of a call's mask arguments, how it is stored and read."""

import torch
from safetensors.torch import save_file

import attnlab
from attnlab import AttentionBias, AttentionMap, capture, masks
from attnlab.functional.backends import backend


def test_a_boolean_lower_triangle_becomes_the_causal_rule():
    bias = AttentionBias.build(5, 5, torch.ones(5, 5, dtype=torch.bool).tril())
    assert bias.mask is None and bias.causal and bias.offset == 0
    near_miss = torch.ones(5, 5, dtype=torch.bool).tril()
    near_miss[4, 0] = False
    kept = AttentionBias.build(5, 5, near_miss)
    assert not kept.causal and torch.equal(kept.mask, near_miss)


def test_a_boolean_key_padding_mask_becomes_attention_mask():
    real = torch.tensor([[True, True, False], [True, True, True]])
    bias = AttentionBias.build(4, 3, real[:, None, None, :])
    assert bias.mask is None and torch.equal(bias.attention_mask, real)


def test_causal_rule_that_hides_nothing_is_dropped():
    assert not AttentionBias.build(1, 9, causal=True).causal  # one new token after a cache
    assert AttentionBias.build(2, 9, causal=True).causal
    assert AttentionBias.build(1, 9, causal=True, causal_alignment="start").causal


def test_dense_is_zero_where_visible_and_minus_inf_where_hidden():
    bias = AttentionBias.build(2, 4, causal=True, attention_mask=torch.tensor([[1, 1, 1, 0]]))
    dense = bias.dense(torch.float32, "cpu", n_lead=1)  # (B, Lq, Lk)
    inf = float("-inf")
    want = torch.tensor([[[0, 0, 0, inf], [0, 0, 0, inf]]])  # end-aligned: row 0 sees keys 0..2
    assert torch.equal(dense, want)


def test_describe_reads_an_attention_bias():
    bias = AttentionBias.build(3, 3, causal=True, window=1,
                               attention_mask=torch.tensor([[0, 1, 1]]))  # fmt: skip
    report = masks.describe(bias)
    # window 1: each query sees only itself; key 0 is padding, so query 0 sees nothing
    assert report.fully_masked_rows == 1
    assert report.first_fully_masked == ((0, 0),)
    assert abs(report.fraction_open - 2 / 9) < 1e-6


def test_attention_map_round_trips_every_part_of_the_bias(tmp_path):
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(2, 2, 5, 4, generator=g) for _ in range(3))
    opts = dict(causal=True, window=3, attention_mask=torch.tensor([[1] * 5, [1, 1, 1, 1, 0]]),
                alibi_slopes=torch.tensor([0.5, 0.25]), softcap=2.0)  # fmt: skip
    with backend("reference"):
        _, want = attnlab.scaled_dot_product_attention(q, k, v, need_weights=True, **opts)
    module = torch.nn.Module()
    with capture(module_with_call(module)) as maps:
        module(q, k, v, opts)
    (amap,) = maps.values()
    torch.testing.assert_close(amap.dense(), want, atol=1e-6, rtol=1e-5)
    loaded = AttentionMap.load(amap.save(tmp_path / "map.safetensors"))
    torch.testing.assert_close(loaded.dense(), want, atol=1e-6, rtol=1e-5)


def module_with_call(module):
    """A model whose forward is one functional attention call (capture needs a model)."""
    from attnlab.nn.attention import MultiHeadAttention

    module.unused = MultiHeadAttention(4, 1)  # capture accepts models with attnlab attention
    module.forward = lambda q, k, v, opts: attnlab.scaled_dot_product_attention(q, k, v, **opts)
    return module


def test_a_map_saved_by_the_first_format_still_loads(tmp_path):
    """Version 1 stored a float ``bias`` tensor and a start-aligned ``causal`` flag (Lq == Lk)."""
    g = torch.Generator().manual_seed(1)
    q, k = torch.randn(1, 1, 4, 3, generator=g), torch.randn(1, 1, 4, 3, generator=g)
    padding = torch.tensor([0.0, 0.0, 0.0, float("-inf")]).expand(1, 1, 1, 4).contiguous()
    scores = (q @ k.transpose(-2, -1)) * 0.5 + padding
    scores = scores.masked_fill(torch.ones(4, 4, dtype=torch.bool).triu(1), float("-inf"))
    want = torch.softmax(scores, -1)
    lse = torch.logsumexp(scores, -1)
    meta = {"format": "attnlab.AttentionMap/1", "scale": "0.5", "causal": "True"}
    path = tmp_path / "v1.safetensors"
    save_file({"q": q, "k": k, "lse": lse, "bias": padding}, str(path), metadata=meta)
    torch.testing.assert_close(AttentionMap.load(path).dense(), want)


def test_a_map_from_a_cached_decode_step_is_end_aligned():
    gpt = attnlab.GPT(attnlab.GPTConfig(vocab_size=30, max_len=16, n_layers=1, n_heads=2,
                                        d_model=16, d_ff=32)).eval()  # fmt: skip
    ids = torch.randint(0, 30, (1, 8))
    cache = gpt.new_kv_cache(1)
    with torch.no_grad():
        gpt(ids[:, :6], kv_cache=cache)
        with capture(gpt) as maps:
            gpt(ids[:, 6:], kv_cache=cache)  # two new queries after six cached keys
        with capture(gpt) as full:
            gpt(ids)
    step = maps["layers.0.self_attn"].dense()  # (1, 2, 2, 8)
    assert step.shape == (1, 2, 2, 8)
    torch.testing.assert_close(step, full["layers.0.self_attn"].dense()[:, :, 6:], atol=1e-5,
                               rtol=1e-4)  # fmt: skip
    assert torch.all(step[:, :, 0, 7] == 0) and torch.all(step[:, :, 1, 7] > 0)
