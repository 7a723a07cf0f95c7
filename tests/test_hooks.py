"""run_with_cache, run_with_hooks and ablate_heads on whole models; block hook points checked
against torch.nn.MultiheadAttention and the residual arithmetic, not against our own code."""

import pytest
import torch
import torch.nn.functional as F

from attnlab import (
    GPT,
    Encoder,
    EncoderConfig,
    EncoderDecoder,
    EncoderDecoderConfig,
    GPTConfig,
    HookPoint,
    ablate_heads,
    run_with_cache,
    run_with_hooks,
)

V, D, H, L = 20, 16, 4, 2
d_h = D // H


@pytest.fixture
def gpt():
    return GPT(GPTConfig(vocab_size=V, max_len=16, n_layers=L, n_heads=H, d_model=D)).eval()


@pytest.fixture
def ids():
    return torch.randint(0, V, (2, 6))


def no_hooks_left(model):
    return all(not m._forward_hooks for m in model.modules())


def test_cache_names_every_hook_point_by_its_module_path(gpt, ids):
    _, cache = run_with_cache(gpt, ids)
    expected = {n for n, m in gpt.named_modules() if isinstance(m, HookPoint)}
    assert set(cache) == expected
    for name in ("layers.1.self_attn.hook_z", "layers.0.hook_resid_mid", "layers.0.ff.hook_post"):
        assert name in cache
    assert cache["layers.1.self_attn.hook_z"].shape == (2, 6, H, d_h)
    assert cache["layers.1.self_attn.hook_pattern"].shape == (2, H, 6, 6)
    assert all(not t.requires_grad for t in cache.values())
    assert no_hooks_left(gpt)


def test_attention_output_matches_torch_multihead_attention(gpt, ids):
    _, cache = run_with_cache(gpt, ids)
    layer = gpt.layers[0]
    theirs = layer.self_attn.to_torch().eval()
    h = layer.norm1(cache["layers.0.hook_resid_pre"])
    causal = torch.ones(6, 6, dtype=torch.bool).triu(1)  # PyTorch: True = masked out
    expected, _ = theirs(h, h, h, attn_mask=causal, need_weights=False)
    torch.testing.assert_close(cache["layers.0.hook_attn_out"], expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(cache["layers.0.self_attn.hook_out"], expected, atol=1e-6, rtol=0)


def test_pre_norm_residual_stream_adds_up(gpt, ids):
    _, c = run_with_cache(gpt, ids)
    embeddings = gpt.token_embedding(ids) + gpt.position(6)
    torch.testing.assert_close(c["layers.0.hook_resid_pre"], embeddings)
    for i in range(L):
        p = f"layers.{i}."
        mid = c[p + "hook_resid_pre"] + c[p + "hook_attn_out"]
        torch.testing.assert_close(c[p + "hook_resid_mid"], mid)
        post = c[p + "hook_resid_mid"] + c[p + "hook_mlp_out"]
        torch.testing.assert_close(c[p + "hook_resid_post"], post)
    torch.testing.assert_close(c["layers.1.hook_resid_pre"], c["layers.0.hook_resid_post"])


def test_post_norm_encoder_hooks_see_the_normalised_stream():
    enc = Encoder(EncoderConfig(vocab_size=V, max_len=16, n_layers=1, n_heads=H, d_model=D,
                                d_ff=32)).eval()  # fmt: skip
    _, c = run_with_cache(enc, torch.randint(0, V, (2, 5)))
    layer = enc.layers[0]
    mid = layer.norm1(c["layers.0.hook_resid_pre"] + c["layers.0.hook_attn_out"])
    torch.testing.assert_close(c["layers.0.hook_resid_mid"], mid)
    post = layer.norm2(c["layers.0.hook_resid_mid"] + c["layers.0.hook_mlp_out"])
    torch.testing.assert_close(c["layers.0.hook_resid_post"], post)


def test_decoder_layer_names_the_stream_after_cross_attention():
    config = EncoderDecoderConfig(src_vocab_size=V, tgt_vocab_size=V, max_len=16, n_heads=H,
                                  d_model=D, d_ff=32, n_encoder_layers=1, n_decoder_layers=1,
                                  dropout=0.0, norm_first=True)  # fmt: skip
    model = EncoderDecoder(config).eval()
    _, c = run_with_cache(model, torch.randint(0, V, (2, 7)), torch.randint(0, V, (2, 4)))
    p = "decoder.layers.0."
    cross = c[p + "hook_resid_mid"] + c[p + "hook_cross_attn_out"]
    torch.testing.assert_close(c[p + "hook_resid_mid_cross"], cross)
    assert c[p + "cross_attn.hook_pattern"].shape == (2, H, 4, 7)
    assert c[p + "cross_attn.hook_k"].shape == (2, H, 7, d_h)
    post = c[p + "hook_resid_mid_cross"] + c[p + "hook_mlp_out"]
    torch.testing.assert_close(c[p + "hook_resid_post"], post)


def test_names_select_a_subset_by_list_or_predicate(gpt, ids):
    _, cache = run_with_cache(gpt, ids, names=["layers.0.self_attn.hook_q"])
    assert list(cache) == ["layers.0.self_attn.hook_q"]
    _, cache = run_with_cache(gpt, ids, names=lambda n: n.endswith("hook_resid_post"))
    assert sorted(cache) == ["layers.0.hook_resid_post", "layers.1.hook_resid_post"]


def test_unknown_names_are_listed_with_close_valid_ones(gpt, ids):
    with pytest.raises(ValueError, match=r"unknown: 'layers.0.self_attn.hook_zz' \(close: \["):
        run_with_cache(gpt, ids, names=["layers.0.self_attn.hook_zz"])
    with pytest.raises(ValueError, match="layers.0.self_attn.hook_z"):
        run_with_cache(gpt, ids, names=["layers.0.self_attn.hook_zz"])


def test_hooks_are_removed_even_when_the_forward_pass_fails(gpt, ids):
    def boom(value, name):
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        run_with_hooks(gpt, ids, fwd_hooks=[("layers.0.hook_resid_mid", boom)])
    assert no_hooks_left(gpt)
    with pytest.raises(ValueError, match="input_ids"):
        run_with_cache(gpt, ids.float())
    assert no_hooks_left(gpt)


def test_run_with_hooks_passes_the_name_and_a_replacement_takes_effect(gpt, ids):
    seen = []

    def zero(value, name):
        seen.append(name)
        return torch.zeros_like(value)

    out = run_with_hooks(gpt, ids, fwd_hooks=[("layers.1.hook_resid_post", zero)])
    assert seen == ["layers.1.hook_resid_post"]
    expected = gpt.lm_head(gpt.norm(torch.zeros(2, 6, D)))  # LayerNorm(0) = its bias
    torch.testing.assert_close(out.logits, expected)
    assert no_hooks_left(gpt)


def test_observing_hooks_leave_logits_bit_identical(gpt, ids):
    plain = gpt(ids).logits
    names = lambda n: "pattern" not in n  # noqa: E731  (hook_pattern switches kernel)
    out = run_with_hooks(gpt, ids, fwd_hooks=[(names, lambda value, name: None)])
    assert torch.equal(out.logits, plain)


def test_kv_cache_key_hooks_see_the_new_positions_only(gpt):
    cache = gpt.new_kv_cache(1)
    gpt(torch.randint(0, V, (1, 4)), kv_cache=cache)
    _, c = run_with_cache(gpt, torch.randint(0, V, (1, 1)), kv_cache=cache)
    k = c["layers.0.self_attn.hook_k"]
    assert k.shape == (1, H, 1, d_h)
    torch.testing.assert_close(k, cache[0].k[:, :, 4:5])
    assert c["layers.0.self_attn.hook_pattern"].shape == (1, H, 1, 5)


def test_a_replaced_key_is_what_the_kv_cache_stores(gpt):
    cache = gpt.new_kv_cache(1)
    run_with_hooks(
        gpt, torch.randint(0, V, (1, 3)), kv_cache=cache,
        fwd_hooks=[("layers.0.self_attn.hook_k", lambda k, name: torch.full_like(k, 7.0))],
    )  # fmt: skip
    assert torch.all(cache[0].k[:, :, :3] == 7.0)


def test_zero_ablating_every_head_leaves_the_output_bias(gpt, ids):
    with ablate_heads(gpt, {0: list(range(H))}):
        _, c = run_with_cache(gpt, ids, names=["layers.0.hook_attn_out"])
    bias = gpt.layers[0].self_attn.out_proj.bias
    torch.testing.assert_close(c["layers.0.hook_attn_out"], bias.expand(2, 6, D))
    assert no_hooks_left(gpt)


def test_zero_ablation_touches_only_the_chosen_heads(gpt, ids):
    _, clean = run_with_cache(gpt, ids, names=["layers.1.self_attn.hook_z"])
    with ablate_heads(gpt, {1: [2]}):
        _, c = run_with_cache(gpt, ids, names=["layers.1.self_attn.hook_z"])
    z, z_clean = c["layers.1.self_attn.hook_z"], clean["layers.1.self_attn.hook_z"]
    assert torch.all(z[:, :, 2] == 0)
    torch.testing.assert_close(z[:, :, [0, 1, 3]], z_clean[:, :, [0, 1, 3]])


def test_mean_ablation_uses_the_mean_over_batch_and_positions(gpt, ids):
    _, clean = run_with_cache(gpt, ids, names=["layers.0.self_attn.hook_z"])
    with ablate_heads(gpt, {0: list(range(H))}, mode="mean"):
        _, c = run_with_cache(gpt, ids, names=["layers.0.hook_attn_out"])
    z_mean = clean["layers.0.self_attn.hook_z"].mean(dim=(0, 1)).reshape(D)  # (H·d_h,)
    w = gpt.layers[0].self_attn.out_proj
    expected = F.linear(z_mean, w.weight, w.bias).expand(2, 6, D)
    torch.testing.assert_close(c["layers.0.hook_attn_out"], expected, atol=1e-6, rtol=0)


def test_ablating_a_named_cross_attention_of_an_encoder_decoder():
    config = EncoderDecoderConfig(src_vocab_size=V, tgt_vocab_size=V, max_len=16, n_heads=H,
                                  d_model=D, d_ff=32, n_encoder_layers=1, n_decoder_layers=1,
                                  dropout=0.0)  # fmt: skip
    model = EncoderDecoder(config).eval()
    src, tgt = torch.randint(0, V, (2, 7)), torch.randint(0, V, (2, 4))
    name = "decoder.layers.0.cross_attn"
    with ablate_heads(model, {name: list(range(H))}):
        _, c = run_with_cache(model, src, tgt, names=[name + ".hook_out"])
    bias = model.decoder.layers[0].cross_attn.out_proj.bias
    torch.testing.assert_close(c[name + ".hook_out"], bias.expand(2, 4, D))
    with (
        pytest.raises(ValueError, match="has no `layers`; name the attention"),
        ablate_heads(model, {0: [0]}),
    ):
        pass


@pytest.mark.parametrize(
    ("heads", "mode", "message"),
    [
        ({0: [0]}, "max", r"mode must be one of \['zero', 'mean'\]; got 'max'"),
        ({2: [0]}, "zero", r"heads keys must be layer indices in \[0, 2\); got 2"),
        ({0: [4]}, "zero", r"heads\[0\] must be a non-empty list of head indices in \[0, 4\)"),
        ({0: []}, "zero", r"heads\[0\] must be a non-empty list"),
        ({"layers.0.ff": [0]}, "zero", r"names of MultiHeadAttention modules; got 'layers.0.ff'"),
    ],
)
def test_ablate_heads_validates_its_arguments(gpt, heads, mode, message):
    with pytest.raises(ValueError, match=message), ablate_heads(gpt, heads, mode=mode):
        pass
    assert no_hooks_left(gpt)


def test_the_shared_ablation_rule_refuses_an_unknown_mode_by_name():
    from attnlab.hooks import ablate_heads_

    with pytest.raises(ValueError, match=r"mode must be one of \['zero', 'mean'\]; got 'median'"):
        ablate_heads_(torch.ones(2, 3, 4, 5), [0], "median", head_axis=2)
