"""Hook points inside MultiHeadAttention and FeedForward, checked against computations done here
from the raw weights (F.linear + view), not with the module's own code."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F

from attnlab import MultiHeadAttention, observe
from attnlab.hooks import run_with_cache, run_with_hooks
from attnlab.nn.feed_forward import FeedForward

B, T, S, D, H = 2, 5, 7, 32, 4
d_h = D // H


def reference_heads(mha, x, memory=None):
    """q (B, H, T, d_h), k, v (B, H_kv, S, d_h) and z (B, T, H, d_h) in float64."""
    memory = x if memory is None else memory
    p = {n: t.double() for n, t in mha.state_dict().items()}
    q = F.linear(x.double(), p["q_proj.weight"], p["q_proj.bias"]).view(B, T, H, d_h)
    k = F.linear(memory.double(), p["k_proj.weight"], p["k_proj.bias"])
    v = F.linear(memory.double(), p["v_proj.weight"], p["v_proj.bias"])
    H_kv = mha.n_kv_heads
    k, v = (t.view(B, -1, H_kv, d_h).transpose(1, 2) for t in (k, v))
    q = q.transpose(1, 2)
    kx = k.repeat_interleave(H // H_kv, 1)
    vx = v.repeat_interleave(H // H_kv, 1)
    pattern = (q @ kx.transpose(-1, -2) / math.sqrt(d_h)).softmax(-1)
    z = (pattern @ vx).transpose(1, 2)
    return q, k, v, pattern, z


@pytest.fixture
def mha():
    return MultiHeadAttention(D, H).eval()


def test_cached_q_k_v_pattern_z_equal_an_independent_computation(mha):
    x = torch.randn(B, T, D)
    _, cache = run_with_cache(mha, x)
    q, k, v, pattern, z = reference_heads(mha, x)
    for name, expected in (("q", q), ("k", k), ("v", v), ("pattern", pattern), ("z", z)):
        torch.testing.assert_close(cache[f"hook_{name}"].double(), expected, atol=1e-5, rtol=0)
    p = mha.state_dict()
    out = F.linear(z.reshape(B, T, D).float(), p["out_proj.weight"], p["out_proj.bias"])
    torch.testing.assert_close(cache["hook_out"], out, atol=1e-5, rtol=0)


def test_grouped_query_keys_are_hooked_with_their_own_heads():
    mha = MultiHeadAttention(D, H, n_kv_heads=2).eval()
    x = torch.randn(B, T, D)
    _, cache = run_with_cache(mha, x)
    _, k, v, _, z = reference_heads(mha, x)
    torch.testing.assert_close(cache["hook_v"].double(), v, atol=1e-5, rtol=0)
    assert cache["hook_k"].shape == (B, 2, T, d_h)
    torch.testing.assert_close(cache["hook_k"].double(), k, atol=1e-5, rtol=0)
    torch.testing.assert_close(cache["hook_z"].double(), z, atol=1e-5, rtol=0)


def test_cross_attention_keys_come_from_the_memory(mha):
    x, memory = torch.randn(B, T, D), torch.randn(B, S, D)
    _, cache = run_with_cache(mha, x, memory)
    _, k, _, pattern, _ = reference_heads(mha, x, memory)
    assert cache["hook_pattern"].shape == (B, H, T, S)
    torch.testing.assert_close(cache["hook_k"].double(), k, atol=1e-5, rtol=0)
    torch.testing.assert_close(cache["hook_pattern"].double(), pattern, atol=1e-5, rtol=0)


def test_a_uniform_pattern_gives_the_mean_value_through_w_o(mha):
    x = torch.randn(B, T, D)
    uniform = lambda w, name: torch.full_like(w, 1.0 / w.shape[-1])  # noqa: E731
    out, _ = run_with_hooks(mha, x, fwd_hooks=[("hook_pattern", uniform)])
    p = mha.state_dict()
    v_mean = F.linear(x, p["v_proj.weight"], p["v_proj.bias"]).mean(1, keepdim=True)  # (B, 1, D)
    expected = F.linear(v_mean, p["out_proj.weight"], p["out_proj.bias"]).expand(B, T, D)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_an_in_place_edit_of_the_pattern_takes_effect(mha):
    x = torch.randn(B, T, D)

    def keep_first_key(w, name):
        w.zero_()
        w[..., 0] = 1.0

    out, _ = run_with_hooks(mha, x, fwd_hooks=[("hook_pattern", keep_first_key)])
    p = mha.state_dict()
    v0 = F.linear(x[:, :1], p["v_proj.weight"], p["v_proj.bias"])  # (B, 1, D)
    expected = F.linear(v0, p["out_proj.weight"], p["out_proj.bias"]).expand(B, T, D)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=0)


def test_a_replaced_z_takes_effect(mha):
    x = torch.randn(B, T, D)
    out, _ = run_with_hooks(mha, x, fwd_hooks=[("hook_z", lambda z, name: torch.zeros_like(z))])
    torch.testing.assert_close(out, mha.out_proj.bias.expand(B, T, D))


def test_weights_are_computed_only_when_hook_pattern_is_hooked(mha):
    notes = []

    class Notes(observe.Observer):
        def step(self, module, step):
            notes.append(step.note)

    x = torch.randn(B, T, D)
    with observe.observing(Notes()):
        run_with_cache(mha, x, names=["hook_z"])
    assert not any("hook_pattern" in n for n in notes)
    with observe.observing(Notes()):
        run_with_cache(mha, x, names=["hook_pattern"])
    assert any("hook_pattern attached: weights computed" in n for n in notes)


def test_read_only_hook_points_leave_the_output_bit_identical(mha):
    x = torch.randn(B, T, D)
    before, _ = mha(x)
    names = ["hook_q", "hook_k", "hook_v", "hook_z", "hook_out"]
    (after, _), cache = run_with_cache(mha, x, names=names)
    assert torch.equal(before, after) and set(cache) == set(names)


def test_unhooked_output_matches_torch_multihead_attention():
    theirs = torch.nn.MultiheadAttention(D, H, batch_first=True).eval()
    ours = MultiHeadAttention.from_torch(theirs)
    x = torch.randn(B, T, D)
    torch.testing.assert_close(ours(x)[0], theirs(x, x, x, need_weights=False)[0])


@pytest.mark.parametrize("name", ["q_proj", "k_proj", "v_proj", "out_proj"])
def test_forward_hooks_on_projections_fire_and_replace(mha, name):
    x = torch.randn(B, T, D)
    seen = []
    proj = getattr(mha, name)

    def hook(module, inputs, output):
        seen.append(output.shape)
        return output * 0

    handle = proj.register_forward_hook(hook)
    try:
        hooked, _ = mha(x)
    finally:
        handle.remove()
    assert seen, f"{name}'s forward hook did not fire"
    assert not torch.allclose(hooked, mha(x)[0])
    if name == "out_proj":
        assert torch.equal(hooked, torch.zeros_like(hooked))


@pytest.mark.parametrize("name", ["linear1", "linear2"])
def test_forward_hooks_on_feed_forward_linears_fire_and_replace(name):
    ff = FeedForward(D, 64).eval()
    x = torch.randn(B, T, D)
    layer = getattr(ff, name)
    handle = layer.register_forward_hook(lambda m, i, o: torch.zeros_like(o))
    try:
        hooked = ff(x)
    finally:
        handle.remove()
    # linear1 → 0: act(0) = 0, so only W_2's bias is left; linear2 → 0: the output is 0
    expected = ff.linear2.bias.expand(B, T, D) if name == "linear1" else torch.zeros(B, T, D)
    torch.testing.assert_close(hooked, expected)


def test_global_forward_hooks_see_every_projection(mha):
    seen = []

    def hook(module, inputs, output):
        seen.append(module)

    handle = torch.nn.modules.module.register_module_forward_hook(hook)
    try:
        mha(torch.randn(B, T, D))
    finally:
        handle.remove()
    for name in ("q_proj", "k_proj", "v_proj", "out_proj", "hook_q", "hook_z", "hook_out"):
        assert getattr(mha, name) in seen, name


def test_global_forward_hooks_see_the_feed_forward_linears():
    ff = FeedForward(D, 64)
    seen = []
    handle = torch.nn.modules.module.register_module_forward_hook(lambda m, i, o: seen.append(m))
    try:
        ff(torch.randn(B, T, D))
    finally:
        handle.remove()
    assert ff.linear1 in seen and ff.linear2 in seen and ff.hook_post in seen


def test_feed_forward_hook_post_is_the_activation():
    ff = FeedForward(D, 64, activation="relu").eval()
    x = torch.randn(B, T, D)
    _, cache = run_with_cache(ff, x)
    expected = F.relu(F.linear(x, ff.linear1.weight, ff.linear1.bias))
    torch.testing.assert_close(cache["hook_post"], expected)


def test_training_gradients_flow_through_a_replaced_pattern():
    mha = MultiHeadAttention(D, H)
    x = torch.randn(B, T, D, requires_grad=True)
    out, _ = run_with_hooks(mha, x, fwd_hooks=[("hook_pattern", lambda w, n: w * 1.0)])
    out.sum().backward()
    assert mha.v_proj.weight.grad is not None and x.grad is not None


def test_a_deep_copy_keeps_its_hook_points(mha):
    clone = copy.deepcopy(mha)
    x = torch.randn(B, T, D)
    _, cache = run_with_cache(clone, x, names=["hook_z"])
    assert cache["hook_z"].shape == (B, T, H, d_h)
