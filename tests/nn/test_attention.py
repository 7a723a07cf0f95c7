"""MultiHeadAttention against torch.nn.MultiheadAttention (weights copied with from_torch)."""

import itertools

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from attnlab import MultiHeadAttention
from attnlab.masks import from_masked_out
from attnlab.models.params import attention_parameter_count

B, T, S, D, H = 2, 5, 7, 32, 4


def make_pair(kdim=None, vdim=None, bias=True):
    theirs = torch.nn.MultiheadAttention(
        D, H, batch_first=True, kdim=kdim, vdim=vdim, bias=bias
    ).eval()
    return theirs, MultiHeadAttention.from_torch(theirs)


def torch_masks(kind_attn, kind_kpm, lq, lk):
    attn_mask = None  # PyTorch convention: True / -inf = masked out
    if kind_attn == "bool":
        attn_mask = torch.rand(lq, lk) > 0.7
        attn_mask[:, 0] = False  # keep one key visible: PyTorch's math path NaNs empty rows
    elif kind_attn == "float":
        attn_mask = torch.randn(lq, lk)
    elif kind_attn == "bool3d":
        attn_mask = torch.rand(B * H, lq, lk) > 0.7
        attn_mask[..., 0] = False
    kpm = None
    if kind_kpm:
        kpm = torch.zeros(B, lk, dtype=torch.bool)
        kpm[0, lk - 2 :] = True
    return attn_mask, kpm


def to_attnlab_mask(attn_mask):
    if attn_mask is None:
        return None
    mask = from_masked_out(attn_mask)
    return mask.view(B, H, *mask.shape[-2:]) if mask.dim() == 3 else mask


CASES = list(
    itertools.product(
        [None, "bool", "float", "bool3d"],  # attn_mask
        [False, True],  # key_padding_mask
        [(None, None), (16, 24)],  # kdim, vdim
        [False, True],  # need_weights
        [False, True],  # average weights
    )
)


@pytest.mark.parametrize(("attn", "kpm", "dims", "need_weights", "average"), CASES)
def test_matches_torch_multihead_attention(attn, kpm, dims, need_weights, average):
    kdim, vdim = dims
    theirs, ours = make_pair(kdim, vdim)
    query = torch.randn(B, T, D)
    key = torch.randn(B, S, kdim or D)
    value = torch.randn(B, S, vdim or D)
    attn_mask, key_padding_mask = torch_masks(attn, kpm, T, S)
    with torch.no_grad():
        expected, expected_w = theirs(
            query, key, value, attn_mask=attn_mask, key_padding_mask=key_padding_mask,
            need_weights=need_weights, average_attn_weights=average,
        )  # fmt: skip
        out, weights = ours(
            query, key, value, mask=to_attnlab_mask(attn_mask),
            attention_mask=None if key_padding_mask is None else ~key_padding_mask,
            need_weights=need_weights, average_weights=average,
        )  # fmt: skip
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    if need_weights:
        torch.testing.assert_close(weights, expected_w, atol=1e-5, rtol=1e-5)
    else:
        assert weights is None


@pytest.mark.parametrize("causal", [False, True])
def test_self_attention_matches_torch_with_causal_mask(causal):
    theirs, ours = make_pair()
    x = torch.randn(B, T, D)
    mask = torch.nn.Transformer.generate_square_subsequent_mask(T) if causal else None
    with torch.no_grad():
        expected, _ = theirs(x, x, x, attn_mask=mask, is_causal=causal)
        out, _ = ours(x, causal=causal)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_matches_torch_in_training_mode_with_gradients():
    theirs, ours = make_pair()
    theirs.train(), ours.train()
    x = torch.randn(B, T, D)
    expected, _ = theirs(x, x, x, need_weights=False)
    out, _ = ours(x)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    expected.square().sum().backward()
    out.square().sum().backward()
    torch.testing.assert_close(
        ours.q_proj.weight.grad, theirs.in_proj_weight.grad[:D], atol=1e-4, rtol=1e-4
    )


@settings(max_examples=25, deadline=None)
@given(
    st.sampled_from([1, 2, 4, 8]), st.integers(1, 3), st.integers(1, 9), st.integers(1, 9),
    st.booleans(), st.integers(0, 2**31 - 1),
)  # fmt: skip
def test_matches_torch_over_random_shapes(heads, batch, t, s, bias, seed):
    torch.manual_seed(seed)
    theirs = torch.nn.MultiheadAttention(16, heads, batch_first=True, bias=bias).eval()
    ours = MultiHeadAttention.from_torch(theirs)
    q, kv = torch.randn(batch, t, 16), torch.randn(batch, s, 16)
    kpm = torch.rand(batch, s) > 0.6
    kpm[:, 0] = False
    with torch.no_grad():
        expected, expected_w = theirs(q, kv, kv, key_padding_mask=kpm, average_attn_weights=False)
        out, w = ours(q, kv, attention_mask=~kpm, need_weights=True)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(w, expected_w, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("dims", [(None, None), (16, 24)])
def test_to_torch_round_trip(dims):
    ours = MultiHeadAttention(D, H, kdim=dims[0], vdim=dims[1]).eval()
    theirs = ours.to_torch()
    q, k, v = torch.randn(B, T, D), torch.randn(B, S, dims[0] or D), torch.randn(B, S, dims[1] or D)
    with torch.no_grad():
        torch.testing.assert_close(ours(q, k, v)[0], theirs(q, k, v)[0], atol=1e-5, rtol=1e-5)
    back = MultiHeadAttention.from_torch(theirs)
    for a, b in zip(ours.parameters(), back.parameters(), strict=True):
        assert torch.equal(a, b)


@pytest.mark.parametrize("n_kv_heads", [1, 2])
def test_grouped_query_attention_matches_sdpa_enable_gqa(n_kv_heads):
    m = MultiHeadAttention(D, H, n_kv_heads=n_kv_heads).eval()
    x = torch.randn(B, T, D)
    d_h = D // H
    q = m.q_proj(x).view(B, T, H, d_h).transpose(1, 2)
    k = m.k_proj(x).view(B, T, n_kv_heads, d_h).transpose(1, 2)
    v = m.v_proj(x).view(B, T, n_kv_heads, d_h).transpose(1, 2)
    ctx = F.scaled_dot_product_attention(q, k, v, is_causal=True, enable_gqa=True)
    expected = m.out_proj(ctx.transpose(1, 2).reshape(B, T, D))
    with torch.no_grad():
        out, _ = m(x, causal=True)
    torch.testing.assert_close(out, expected.detach(), atol=1e-5, rtol=1e-5)
    assert m.k_proj.weight.shape == (n_kv_heads * d_h, D)


def test_kv_cache_decoding_equals_full_pass():
    from attnlab import LayerKVCache

    m = MultiHeadAttention(D, H).eval()
    x = torch.randn(B, 9, D)
    with torch.no_grad():
        full, _ = m(x, causal=True)
        cache = LayerKVCache(B, H, 9, D // H)
        steps = [m(x[:, :4], causal=True, kv_cache=cache)[0]]
        steps += [m(x[:, t : t + 1], causal=True, kv_cache=cache)[0] for t in range(4, 9)]
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-5)


def test_heads_do_not_change_the_parameter_count():
    counts = {h: sum(p.numel() for p in MultiHeadAttention(128, h).parameters()) for h in (1, 4, 8)}
    assert len(set(counts.values())) == 1
    assert counts[1] == attention_parameter_count(128, 1) == 4 * 128 * 128 + 4 * 128


def test_d_model_not_divisible_by_heads_names_nearest_valid_counts():
    with pytest.raises(ValueError, match=r"128 % 5 = 3; nearest valid head counts: \[4, 8\]"):
        MultiHeadAttention(128, 5)


@pytest.mark.parametrize(("bad", "message"), [
    ({"n_kv_heads": 3}, "n_kv_heads must be a positive divisor of n_heads=4; got 3"),
    ({"dropout": 1.0}, r"dropout must be in \[0, 1\); got 1.0"),
])  # fmt: skip
def test_bad_construction_arguments(bad, message):
    with pytest.raises(ValueError, match=message):
        MultiHeadAttention(D, H, **bad)


def test_non_positive_sizes_are_refused():
    with pytest.raises(ValueError, match="d_model must be a positive integer; got 0"):
        MultiHeadAttention(0, 1)


def test_wrong_query_width_names_expected_size():
    with pytest.raises(
        ValueError, match=r"query must have last dimension 32; got shape \(2, 5, 16\)"
    ):
        MultiHeadAttention(D, H)(torch.randn(2, 5, 16))


def test_unbatched_query_is_refused():
    with pytest.raises(ValueError, match=r"query must have shape \(B, T, 32\) \(batch first\)"):
        MultiHeadAttention(D, H)(torch.randn(5, 32))


def test_attention_mask_shape_is_checked():
    with pytest.raises(ValueError, match=r"attention_mask must have shape \(B, S\) = \(2, 5\)"):
        MultiHeadAttention(D, H)(torch.randn(2, 5, D), attention_mask=torch.ones(2, 4))


def test_float_attention_mask_is_refused():
    with pytest.raises(ValueError, match="attention_mask must be bool or integer 0/1"):
        MultiHeadAttention(D, H)(torch.randn(2, 5, D), attention_mask=torch.ones(2, 5))


def test_from_torch_refuses_add_bias_kv():
    with pytest.raises(ValueError, match="add_bias_kv=True"):
        MultiHeadAttention.from_torch(torch.nn.MultiheadAttention(D, H, add_bias_kv=True))


def test_stacked_projection_cache_follows_weight_updates():
    m = MultiHeadAttention(D, H).eval()
    x = torch.randn(B, T, D)
    with torch.no_grad():
        m(x)  # fills the inference cache of [W_Q; W_K; W_V]
        m.k_proj.weight.mul_(2.0)  # in-place update: same storage, new version
        out, _ = m(x)
        expected, _ = m(x, x.clone(), x.clone())  # separate projections, no cache
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_gradients_reach_each_projection_in_self_attention():
    m = MultiHeadAttention(D, H)
    m(torch.randn(B, T, D), causal=True)[0].sum().backward()
    assert all(p.grad is not None for p in m.parameters())
