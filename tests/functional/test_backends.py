"""Every backend gives the same exact attention, for every kind of bias, against an independent
float64 oracle; the portable backend needs no private PyTorch operation and runs on `meta`."""

import warnings

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.functional.test_attention import masked_softmax

import attnlab
from attnlab.functional import attention as attention_module
from attnlab.functional import backends

ROUTES = ("flash-cpu", "blocked", "reference", "portable")


def oracle(q, k, v, *, scale, mask=None, causal=False, offset=0, window=None,
           attention_mask=None, slopes=None, softcap=None):  # fmt: skip
    """softmax(cap(q·kᵀ·scale) + bias)·v in float64, written out with no attnlab code."""
    q, k, v = q.double(), k.double(), v.double()
    B, H, lq, _ = q.shape
    lk = k.shape[-2]
    s = torch.einsum("bhqd,bhkd->bhqk", q, k) * scale
    if softcap is not None:
        s = softcap * torch.tanh(s / softcap)
    pos_q = torch.arange(lq)[:, None] + (offset if causal else lk - lq)
    pos_k = torch.arange(lk)[None, :]
    if slopes is not None:
        s = s - slopes.double()[None, :, None, None] * (pos_q - pos_k).clamp(min=0)
    visible = torch.ones(B, H, lq, lk, dtype=torch.bool)
    if mask is not None:
        if mask.dtype == torch.bool:
            visible = visible & mask
        else:
            s = s + mask.double()
    if causal:
        visible = visible & (pos_k <= pos_q)
        if window is not None:
            visible = visible & (pos_k > pos_q - window)
    if attention_mask is not None:
        visible = visible & attention_mask.bool()[:, None, None, :]
    w = masked_softmax(s, visible)
    return w @ v, w


@st.composite
def cases(draw):
    B, H = draw(st.integers(1, 2)), draw(st.integers(1, 3))
    lq, lk = draw(st.integers(1, 7)), draw(st.integers(1, 9))
    d_k = draw(st.integers(1, 6))
    d_v = draw(st.sampled_from([d_k, d_k + 2]))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**16)))
    opts = {}
    if draw(st.booleans()):
        opts["causal"] = True
        opts["causal_alignment"] = draw(st.sampled_from(["end", "start"]))
        if draw(st.booleans()):
            opts["window"] = draw(st.integers(1, 4))
    kind = draw(st.sampled_from(["none", "bool", "float"]))
    if kind == "bool":
        opts["mask"] = torch.rand(B, 1, lq, lk, generator=g) > 0.3
    elif kind == "float":
        opts["mask"] = torch.randn(1, H, lq, lk, generator=g)
    if draw(st.booleans()):
        opts["attention_mask"] = (torch.rand(B, lk, generator=g) > 0.3).long()
    if draw(st.booleans()):
        opts["alibi_slopes"] = torch.rand(H, generator=g)
    if draw(st.booleans()):
        opts["softcap"] = draw(st.sampled_from([0.5, 5.0]))
    q = torch.randn(B, H, lq, d_k, generator=g)
    k = torch.randn(B, H, lk, d_k, generator=g)
    v = torch.randn(B, H, lk, d_v, generator=g)
    return q, k, v, opts


def expected(q, k, v, opts):
    lq, lk = q.shape[-2], k.shape[-2]
    causal = opts.get("causal", False)
    offset = lk - lq if opts.get("causal_alignment", "end") == "end" else 0
    return oracle(
        q, k, v, scale=q.shape[-1] ** -0.5, mask=opts.get("mask"), causal=causal,
        offset=offset, window=opts.get("window"), attention_mask=opts.get("attention_mask"),
        slopes=opts.get("alibi_slopes"), softcap=opts.get("softcap"),
    )  # fmt: skip


@pytest.mark.parametrize("backend", attnlab.BACKENDS)
@settings(max_examples=40, deadline=None)
@given(case=cases(), need_weights=st.booleans())
def test_every_backend_equals_the_oracle(backend, case, need_weights):
    q, k, v, opts = case
    with attnlab.backend(backend):
        out, w = attnlab.scaled_dot_product_attention(q, k, v, need_weights=need_weights, **opts)
    want_out, want_w = expected(q, k, v, opts)
    torch.testing.assert_close(out.double(), want_out, atol=2e-5, rtol=1e-4)
    if need_weights:
        torch.testing.assert_close(w.double(), want_w, atol=2e-6, rtol=1e-4)
    else:
        assert w is None


@pytest.mark.parametrize("backend", attnlab.BACKENDS)
@settings(max_examples=15, deadline=None)
@given(case=cases(), need_weights=st.booleans())
def test_gradients_on_every_backend_equal_the_oracle(backend, case, need_weights):
    q, k, v, opts = case
    q, k, v = (t.double().requires_grad_() for t in (q, k, v))
    with attnlab.backend(backend):
        out, w = attnlab.scaled_dot_product_attention(q, k, v, need_weights=need_weights, **opts)
    loss = out.sum() + (w.square().sum() if need_weights else 0)
    got = torch.autograd.grad(loss, (q, k, v))
    q2, k2, v2 = (t.detach().clone().requires_grad_() for t in (q, k, v))
    want_out, want_w = expected(q2, k2, v2, opts)
    want_loss = want_out.sum() + (want_w.square().sum() if need_weights else 0)
    want = torch.autograd.grad(want_loss, (q2, k2, v2))
    for g, h in zip(got, want, strict=True):
        torch.testing.assert_close(g, h, atol=1e-8, rtol=1e-6)


@pytest.mark.parametrize("backend", attnlab.BACKENDS)
def test_each_backend_runs_its_own_route(backend, monkeypatch):
    ran = []
    for name, run in list(attention_module._ROUTES.items()):
        monkeypatch.setitem(attention_module._ROUTES, name,
                            lambda *a, _n=name, _r=run: ran.append(_n) or _r(*a))  # fmt: skip
    q, k, v = (torch.randn(1, 2, 5, 4) for _ in range(3))
    with attnlab.backend(backend):
        attnlab.scaled_dot_product_attention(q, k, v, causal=True, need_weights=True)
    assert ran == [{"auto": "blocked"}.get(backend, backend)]


def test_portable_backend_uses_no_private_operation(monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("a private PyTorch operation was called")

    monkeypatch.setattr(backends, "_PRIVATE", {})  # looked up afresh, and found forbidden
    monkeypatch.setattr(torch, "_softmax", forbidden)
    aten = torch.ops.aten
    monkeypatch.setattr(aten, "_scaled_dot_product_flash_attention_for_cpu", forbidden)
    q, k, v = (torch.randn(2, 2, 6, 4) for _ in range(3))
    padding = torch.tensor([[1] * 6, [1, 1, 1, 0, 0, 0]])
    with attnlab.backend("portable"):
        for need_weights in (False, True):
            got, _ = attnlab.scaled_dot_product_attention(
                q, k, v, causal=True, attention_mask=padding, need_weights=need_weights
            )
            want, _ = oracle(q, k, v, scale=0.5, causal=True, offset=0, attention_mask=padding)
            torch.testing.assert_close(got.double(), want, atol=1e-6, rtol=1e-5)


@pytest.mark.parametrize("dropout", [0.0, 0.3])
def test_training_by_causal_blocks_uses_no_private_operation(monkeypatch, dropout):
    """Causal training runs attnlab's own backward (attnlab.functional.causal_blocks) on the
    portable route; it too keeps to public operations (Python-level calls of the private
    softmax ones are refused here), so it runs on any device. Its values are checked against
    the formula in tests/functional/test_causal_blocks.py; here, without dropout, against
    the float64 oracle."""

    def forbidden(*args, **kwargs):
        raise AssertionError("a private PyTorch operation was called")

    q, k, v = (torch.randn(2, 2, 70, 4, dtype=torch.float64, requires_grad=True) for _ in "qkv")
    want, _ = oracle(q, k, v, scale=0.5, causal=True, offset=0)
    want_grads = torch.autograd.grad(want.sum(), (q, k, v))
    for op in ("_softmax", "_softmax_backward_data"):
        monkeypatch.setattr(torch.ops.aten, op, forbidden)
    monkeypatch.setattr(torch, "_softmax", forbidden)
    monkeypatch.setattr(torch, "_softmax_backward_data", forbidden)
    with attnlab.backend("portable"):
        got, _ = attnlab.scaled_dot_product_attention(
            q, k, v, causal=True, causal_alignment="start", dropout=dropout, training=True
        )
        grads = torch.autograd.grad(got.sum(), (q, k, v))
    if dropout == 0:
        assert torch.allclose(got, want, atol=1e-12)
        assert all(torch.allclose(a, b, atol=1e-12) for a, b in zip(grads, want_grads, strict=True))


@pytest.mark.parametrize("backend", attnlab.BACKENDS)
@pytest.mark.parametrize("with_mask", [False, True])
def test_learned_bias_gets_its_gradient_on_every_backend(backend, with_mask):
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(2, 2, 5, 4, generator=g, dtype=torch.float64) for _ in range(3))
    slopes = torch.rand(2, generator=g, dtype=torch.float64).requires_grad_()
    mask = torch.randn(1, 2, 5, 5, generator=g, dtype=torch.float64).requires_grad_()
    learned = (slopes, mask) if with_mask else (slopes,)
    mask = mask if with_mask else None
    for need_weights in (False, True):
        with attnlab.backend(backend):
            out, _ = attnlab.scaled_dot_product_attention(
                q, k, v, mask, causal=True, alibi_slopes=slopes, need_weights=need_weights
            )
        got = torch.autograd.grad(out.square().sum(), learned)
        want_out, _ = oracle(q, k, v, scale=0.5, mask=mask, causal=True, slopes=slopes)
        want = torch.autograd.grad(want_out.square().sum(), learned)
        for a, b in zip(got, want, strict=True):
            torch.testing.assert_close(a, b)


@pytest.mark.parametrize("backend", attnlab.BACKENDS)
@pytest.mark.parametrize("softcap", [None, 5.0])
def test_dropout_in_training_is_applied_on_every_backend(backend, softcap):
    g = torch.Generator().manual_seed(4)
    q, k, v = (torch.randn(1, 2, 6, 4, generator=g) for _ in range(3))
    plain, _ = oracle(q, k, v, scale=0.5, softcap=softcap)
    draws = []
    torch.manual_seed(0)
    with torch.no_grad(), attnlab.backend(backend):
        for _ in range(400):
            out, _ = attnlab.scaled_dot_product_attention(
                q, k, v, softcap=softcap, dropout=0.5, training=True
            )
            draws.append(out.double())
    assert not torch.allclose(draws[0], plain, atol=1e-3)  # dropped: not the plain output
    mean = torch.stack(draws).mean(0)  # inverted dropout keeps the expectation
    torch.testing.assert_close(mean, plain, atol=0.15, rtol=0.0)


@pytest.mark.parametrize("need_weights", [False, True])
def test_portable_backend_runs_on_the_meta_device(need_weights):
    q = torch.empty(2, 4, 128, 32, device="meta")
    k = torch.empty(2, 4, 160, 32, device="meta")
    v = torch.empty(2, 4, 160, 48, device="meta")
    pad = torch.ones(2, 160, dtype=torch.bool, device="meta")
    with attnlab.backend("portable"):
        out, w = attnlab.scaled_dot_product_attention(
            q, k, v, causal=True, attention_mask=pad, need_weights=need_weights
        )
    assert out.device.type == "meta" and out.shape == (2, 4, 128, 48)
    if need_weights:
        assert w.device.type == "meta" and w.shape == (2, 4, 128, 160)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("need_weights", [False, True])
def test_auto_backend_on_cuda_equals_the_oracle(need_weights):
    q, k, v = (torch.randn(2, 2, 9, 8) for _ in range(3))
    out, w = attnlab.scaled_dot_product_attention(
        q.cuda(), k.cuda(), v.cuda(), causal=True, need_weights=need_weights
    )
    want_out, want_w = oracle(q, k, v, scale=8**-0.5, causal=True)
    torch.testing.assert_close(out.cpu().double(), want_out, atol=1e-4, rtol=1e-3)
    if need_weights:
        torch.testing.assert_close(w.cpu().double(), want_w, atol=1e-5, rtol=1e-3)


def test_a_missing_private_operation_falls_back_with_one_warning(monkeypatch):
    monkeypatch.setattr(backends, "_PRIVATE", {})
    monkeypatch.delattr(torch, "_softmax")
    q, k, v = (torch.randn(1, 2, 6, 4) for _ in range(3))
    with pytest.warns(RuntimeWarning, match="no torch._softmax"), attnlab.backend("blocked"):
        _, w = attnlab.scaled_dot_product_attention(q, k, v, need_weights=True)
    torch.testing.assert_close(w.double(), oracle(q, k, v, scale=0.5)[1])
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once only
        with attnlab.backend("blocked"):
            attnlab.scaled_dot_product_attention(q, k, v, need_weights=True)


def test_unknown_backend_is_a_clear_error():
    error = pytest.raises(ValueError, match=r"backend must be one of .*'portable'.*; got 'fast'")
    with error, attnlab.backend("fast"):
        pass


def test_backend_selection_nests_and_restores():
    from attnlab.functional.backends import current_backend

    with attnlab.backend("portable"):
        with attnlab.backend("reference"):
            assert current_backend() == "reference"
        assert current_backend() == "portable"
    assert current_backend() == "auto"


EMPTY_CASES = {"no queries": ((1, 2, 0, 4), (1, 2, 5, 4)), "no keys": ((1, 2, 3, 4), (1, 2, 0, 4)),
               "no batch": ((0, 2, 3, 4), (0, 2, 3, 4))}  # fmt: skip


def test_empty_inputs_never_reach_the_flash_kernel():
    """PyTorch's CPU flash kernel kills the process (SIGFPE) on an empty q or k: run every
    backend on empty inputs in a child process, so a crash fails this test, not the suite."""
    import subprocess
    import sys

    script = f"""
import torch, attnlab
for name, (qs, ks) in {EMPTY_CASES!r}.items():
    q, k = torch.randn(qs), torch.randn(ks)
    for backend in attnlab.BACKENDS:
        for need_weights in (False, True):
            with attnlab.backend(backend):
                out, w = attnlab.scaled_dot_product_attention(q, k, k, need_weights=need_weights)
            assert out.shape == qs and (w is None or w.shape == qs[:3] + ks[2:3]), name
            assert not out.isnan().any()
print("ok")
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0 and done.stdout.strip() == "ok", (done.returncode, done.stderr)


@pytest.mark.parametrize("backend", attnlab.BACKENDS)
@pytest.mark.parametrize("strided", ["q", "k", "v", "k transposed"])
@pytest.mark.parametrize("need_weights", [False, True])
def test_inputs_strided_along_the_head_dimension_give_exact_results(backend, strided, need_weights):
    """PyTorch's CPU flash kernel, called directly, misreads inputs whose last dimension is not
    contiguous (F.scaled_dot_product_attention checks for this; a direct call does not)."""
    g = torch.Generator().manual_seed(5)
    q, k, v = (torch.randn(2, 3, 5, 16, generator=g) for _ in range(3))
    if strided == "k transposed":
        k = k.transpose(-2, -1).contiguous().transpose(-2, -1)  # keys stored (d, L)
    else:
        wide = torch.randn(2, 3, 5, 32, generator=g)[..., ::2]  # stride 2 along d
        q, k, v = (wide if name == strided else t for name, t in zip("qkv", (q, k, v), strict=True))
    assert {"q": q, "k": k, "v": v}.get(strided, k).stride(-1) != 1
    with torch.no_grad(), attnlab.backend(backend):
        out, w = attnlab.scaled_dot_product_attention(q, k, v, causal=True,
                                                      need_weights=need_weights)  # fmt: skip
    want_out, want_w = oracle(q, k, v, scale=0.25, causal=True)
    torch.testing.assert_close(out.double(), want_out, atol=2e-5, rtol=1e-4)
    if need_weights:
        torch.testing.assert_close(w.double(), want_w, atol=2e-6, rtol=1e-4)
