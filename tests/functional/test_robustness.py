"""Property test: attention survives every shape (zeros included), device (cpu, meta), dtype
and NaN/±inf placement, on every backend and in MultiHeadAttention, and agrees row by row with a
float64 oracle written here (no attnlab code): NaN reaches exactly the rows that see it, a row
that sees no key is 0, and need_weights=True and False give the same output."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import attnlab
from attnlab import MultiHeadAttention, scaled_dot_product_attention

SPECIALS = (math.nan, math.inf, -math.inf)
DTYPES = (torch.float32, torch.float64, torch.bfloat16)
TOLERANCE = {torch.float32: 1e-4, torch.float64: 1e-9, torch.bfloat16: 4e-2}


def oracle(q, k, v, visible, scale, added=None):
    """softmax(q·kᵀ·scale + added)·v in float64, one query row at a time over the keys it sees.
    A row that sees no key, or whose visible scores are all −inf, is 0; elsewhere IEEE
    arithmetic decides (NaN in, NaN out). Inputs (B, H, L, d); visible (B, H, Lq, Lk)."""
    q, k, v = q.double(), k.double(), v.double()
    B, H, lq, lk = visible.shape
    out = torch.zeros(B, H, lq, v.shape[-1], dtype=torch.float64)
    weights = torch.zeros(B, H, lq, lk, dtype=torch.float64)
    for b in range(B):
        for h in range(H):
            for i in range(lq):
                seen = visible[b, h, i].nonzero()[:, 0]
                if len(seen) == 0:
                    continue
                s = (k[b, h, seen] @ q[b, h, i]) * scale
                if added is not None:
                    s = s + added[b, h, i, seen].double()
                if bool((s == -math.inf).all()):
                    continue
                p = torch.softmax(s, dim=0)
                weights[b, h, i, seen] = p
                out[b, h, i] = p @ v[b, h, seen]
    return out, weights


def assert_same(got, want, dtype, what):
    """Same NaN and ±inf positions, finite values close."""
    got = got.double()
    assert torch.equal(got.isnan(), want.isnan()), f"{what}: NaN rows differ\n{got}\n{want}"
    for sign in (1, -1):
        assert torch.equal(got == sign * math.inf, want == sign * math.inf), f"{what}: inf differ"
    finite = want.isfinite()
    tol = TOLERANCE[dtype]
    torch.testing.assert_close(got[finite], want[finite], atol=tol, rtol=tol, msg=what)


def plant(draw, tensors):
    """Write NaN/±inf at up to three drawn positions of the drawn tensors (in place)."""
    for _ in range(draw(st.integers(0, 3))):
        name = draw(st.sampled_from(sorted(tensors)))
        t = tensors[name]
        if t.numel() == 0:
            continue
        index = tuple(draw(st.integers(0, size - 1)) for size in t.shape)
        t[index] = draw(st.sampled_from(SPECIALS))


@st.composite
def attention_cases(draw):
    B, H = draw(st.integers(0, 2)), draw(st.integers(0, 2))
    lq, lk = draw(st.integers(0, 5)), draw(st.integers(0, 6))
    d_k = draw(st.integers(0, 4))
    d_v = draw(st.sampled_from([d_k, draw(st.integers(0, 4))]))
    dtype = draw(st.sampled_from(DTYPES))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    q = torch.randn(B, H, lq, d_k, generator=g).to(dtype)
    k = torch.randn(B, H, lk, d_k, generator=g).to(dtype)
    v = torch.randn(B, H, lk, d_v, generator=g).to(dtype)
    kind = draw(st.sampled_from(["none", "causal", "bool", "float", "padding"]))
    visible = torch.ones(B, H, lq, lk, dtype=torch.bool)
    added, kwargs = None, {}
    if kind == "causal":
        kwargs["causal"] = True
        visible &= torch.arange(lk)[None, :] <= torch.arange(lq)[:, None] + (lk - lq)
    elif kind == "bool":
        kwargs["mask"] = torch.rand(lq, lk, generator=g) < 0.7
        visible &= kwargs["mask"]
    elif kind == "float":
        added = torch.randn(lq, lk, generator=g).expand(B, H, lq, lk).clone()
        added[torch.rand(lq, lk, generator=g).expand(B, H, lq, lk) < 0.3] = -math.inf
        plant(draw, {"mask": added})
        kwargs["mask"] = added[0, 0] if B and H else added.new_zeros(lq, lk)
        added = kwargs["mask"].expand(B, H, lq, lk)
        visible &= added != -math.inf
    elif kind == "padding":
        kwargs["attention_mask"] = torch.rand(B, lk, generator=g) < 0.7
        visible &= kwargs["attention_mask"][:, None, None, :]
    plant(draw, {"q": q, "k": k, "v": v})
    return q, k, v, visible, added, kwargs


@settings(max_examples=250, deadline=None)
@given(
    case=attention_cases(),
    backend=st.sampled_from(attnlab.BACKENDS),
    device=st.sampled_from(["cpu", "cpu", "meta"]),
)
def test_attention_survives_any_input_and_matches_the_oracle_row_by_row(case, backend, device):
    q, k, v, visible, added, kwargs = case
    mask = kwargs.pop("mask", None)
    moved = [None if t is None else t.to(device) for t in (q, k, v, mask)]
    kwargs = {name: t.to(device) if torch.is_tensor(t) else t for name, t in kwargs.items()}
    with attnlab.backend(backend):
        out, none = scaled_dot_product_attention(*moved, **kwargs)
        out_w, weights = scaled_dot_product_attention(*moved, **kwargs, need_weights=True)
    B, H, lq, lk = visible.shape
    assert none is None
    assert out.shape == out_w.shape == (B, H, lq, v.shape[-1]) and out.dtype == q.dtype
    assert weights.shape == (B, H, lq, lk) and out.device.type == device
    if device == "meta":
        return
    scale = q.shape[-1] ** -0.5 if q.shape[-1] else 1.0
    want_out, want_w = oracle(q, k, v, visible, scale, added)
    assert_same(out, want_out, q.dtype, f"{backend} output")
    assert_same(out_w, want_out, q.dtype, f"{backend} output with weights")
    assert_same(weights, want_w, q.dtype, f"{backend} weights")


@pytest.mark.parametrize("lk", [1, 4, 15, 16, 63, 64, 100, 700])
def test_the_flash_fast_path_gives_a_nan_query_row_nan_not_zero(lk):
    """The everyday call (4-D float32, no mask, auto backend) runs the flash kernel straight
    away; that kernel writes 0 for a row whose scores are all NaN when it has fewer than 16 keys,
    so the fast path checks its log-sum-exp below 64 keys and trusts the kernel above."""
    q, k, v = torch.randn(1, 2, 4, 8), torch.randn(1, 2, lk, 8), torch.randn(1, 2, lk, 8)
    q[0, 1, 2, 0] = math.nan
    out = scaled_dot_product_attention(q, k, v).output
    assert out[0, 1, 2].isnan().all()
    assert not out[0, 0].isnan().any() and not out[0, 1, [0, 1, 3]].isnan().any()


def test_a_nan_value_after_a_causal_query_does_not_reach_it():
    q, k, v = (torch.randn(1, 1, 40, 8) for _ in range(3))
    v[0, 0, 30, 3] = math.nan
    out = scaled_dot_product_attention(q, k, v, causal=True).output
    assert not out[0, 0, :30].isnan().any()
    assert out[0, 0, 30:, 3].isnan().all() and not out[0, 0, 30:, [0, 1, 2, 4]].isnan().any()


@pytest.mark.parametrize("backend", attnlab.BACKENDS)
def test_infinite_values_follow_ieee_arithmetic_over_the_visible_keys_only(backend):
    """Row 0 adds +inf and −inf (NaN); row 1 sees +inf, and inf at a key of weight 0 (score
    −inf): NaN; row 2 sees a NaN value; row 3 sees −inf. Hidden infinities reach no row."""
    q, k, v = (torch.randn(1, 1, 4, 2) for _ in range(3))
    q[..., 0] = q[..., 0].abs() + 0.5
    k[0, 0, 3, 0] = -math.inf  # every query scores key 3 at −inf
    v[0, 0, 0, 0], v[0, 0, 1, 0], v[0, 0, 2, 1], v[0, 0, 3, 1] = (
        math.inf,
        -math.inf,
        math.nan,
        math.inf,
    )
    visible = torch.tensor([[1, 1, 0, 0], [1, 0, 0, 1], [0, 0, 1, 0], [0, 1, 0, 0]]).bool()
    want_out, want_w = oracle(q, k, v, visible[None, None], 2**-0.5)
    assert want_out[0, 0, :, 0].isnan().tolist() == [True, False, False, False]
    assert want_out[0, 0, :, 1].isnan().tolist() == [False, True, True, False]
    with attnlab.backend(backend):
        out = scaled_dot_product_attention(q, k, v, visible).output
        out_w, weights = scaled_dot_product_attention(q, k, v, visible, need_weights=True)
    assert_same(out, want_out, q.dtype, "output")
    assert_same(out_w, want_out, q.dtype, "output with weights")
    assert_same(weights, want_w, q.dtype, "weights")


@st.composite
def module_cases(draw):
    n_heads = draw(st.sampled_from([1, 2]))
    d_model = 4 * n_heads
    B, T = draw(st.integers(0, 2)), draw(st.integers(0, 4))
    S = draw(st.sampled_from([None, draw(st.integers(0, 4))]))  # None: self-attention
    dtype = draw(st.sampled_from(DTYPES))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    x = torch.randn(B, T, d_model, generator=g).to(dtype)
    memory = None if S is None else torch.randn(B, S, d_model, generator=g).to(dtype)
    plant(draw, {"x": x} if memory is None else {"x": x, "memory": memory})
    lk = T if S is None else S
    kwargs = {}
    if draw(st.booleans()):
        kwargs["attention_mask"] = torch.rand(B, lk, generator=g) < 0.7
    if S is None and draw(st.booleans()):
        kwargs["causal"] = True
    return n_heads, d_model, x, memory, kwargs


def module_oracle(m, x, memory, kwargs):
    """The layer in float64 from its own weights: projections, the attention oracle, W_O."""
    p = {name: t.detach().double() for name, t in m.state_dict().items()}
    src = x if memory is None else memory
    B, T, D = x.shape
    S, H = src.shape[1], m.n_heads

    def heads(t, name):  # (B, L, D) → (B, H, L, d_h)
        y = t.double() @ p[f"{name}.weight"].T + p[f"{name}.bias"]
        return y.view(B, t.shape[1], H, D // H).transpose(1, 2)

    q, k, v = heads(x, "q_proj"), heads(src, "k_proj"), heads(src, "v_proj")
    visible = torch.ones(B, H, T, S, dtype=torch.bool)
    if "attention_mask" in kwargs:
        visible &= kwargs["attention_mask"][:, None, None, :]
    if kwargs.get("causal"):
        visible &= torch.arange(S)[None, :] <= torch.arange(T)[:, None] + (S - T)
    out, weights = oracle(q, k, v, visible, (D // H) ** -0.5)
    z = out.transpose(1, 2).reshape(B, T, D)
    return z @ p["out_proj.weight"].T + p["out_proj.bias"], weights


@settings(max_examples=80, deadline=None)
@given(case=module_cases(), device=st.sampled_from(["cpu", "cpu", "meta"]))
def test_multi_head_attention_survives_any_input_and_matches_the_oracle(case, device):
    n_heads, d_model, x, memory, kwargs = case
    torch.manual_seed(0)
    m = MultiHeadAttention(d_model, n_heads).to(x.dtype).eval()
    want_out, want_w = module_oracle(m, x, memory, kwargs)
    m = m.to(device)
    args = [x.to(device)] + ([] if memory is None else [memory.to(device)])
    kwargs = {name: t.to(device) if torch.is_tensor(t) else t for name, t in kwargs.items()}
    with torch.no_grad():
        out, _ = m(*args, **kwargs)
        out_w, weights = m(*args, **kwargs, need_weights=True)
    assert out.shape == out_w.shape == x.shape and out.device.type == device
    if device == "meta":
        return
    assert_same(out, want_out, x.dtype, "output")
    assert_same(out_w, want_out, x.dtype, "output with weights")
    assert_same(weights, want_w, x.dtype, "weights")


@pytest.mark.parametrize(
    "shape", [(2, 2, 0, 8, 3), (2, 2, 3, 8, 0), (2, 2, 0, 8, 0), (0, 2, 3, 8, 3)]
)
def test_capture_records_empty_calls(shape):
    B, H, lq, d, lk = shape
    q, k, v = torch.randn(B, H, lq, d), torch.randn(B, H, lk, d), torch.randn(B, H, lk, d)
    model = torch.nn.Module()
    model.attn = MultiHeadAttention(8, 2).eval()
    with torch.no_grad(), attnlab.capture(model) as maps:
        scaled_dot_product_attention(q, k, v, need_weights=True)
        model.attn(torch.randn(B, lq, 8), torch.randn(B, lk, 8), need_weights=True)
    assert tuple(maps["attn"].shape) == (B, 2, lq, lk)
