import doctest
import io

import pytest
import torch
import torch.nn.functional as F

import attnlab
import attnlab.trace
from attnlab import MultiHeadAttention, observe, trace_shapes
from attnlab.functional.reference import reference_attention


def test_trace_prints_the_notes_worked_example():
    out = io.StringIO()
    with torch.no_grad(), trace_shapes(print_to=out):
        MultiHeadAttention(128, 4).eval()(torch.randn(2, 10, 128))
    text = out.getvalue()
    assert (
        "x (2, 10, 128) → q (2, 10, 128) → heads (2, 4, 10, 32) [128 → 4×32] → "
        "concat (2, 10, 128) [4×32 → 128] → out (2, 10, 128)"
    ) in text
    assert "kernel: flash-cpu" in text


def test_trace_returns_steps_as_data():
    with torch.no_grad(), trace_shapes(print_to=None) as trace:
        MultiHeadAttention(64, 8).eval()(torch.randn(1, 6, 64), need_weights=True)
    (call,) = trace.calls
    shapes = {s.name: s.shape for s in call.steps if s.shape is not None}
    assert shapes["heads"] == (1, 8, 6, 8)
    assert shapes["weights"] == (1, 8, 6, 6)
    assert call.kernel.startswith("blocked: need_weights=True")


@pytest.mark.parametrize(("need_weights", "grad"), [(True, True), (True, False), (False, True)])
def test_weights_with_autograd_run_the_reference_kernel(spy, need_weights, grad):
    """Only weights that must carry gradients go to the readable reference kernel; its weights
    then reach the caller with their graph."""
    reference = spy(reference_attention)
    mha = MultiHeadAttention(16, 2)
    x = torch.randn(1, 3, 16)
    with torch.set_grad_enabled(grad), trace_shapes(print_to=None):
        _, w = mha(x, need_weights=need_weights)
    assert len(reference) == int(need_weights and grad)
    if need_weights and grad:
        w.sum().backward()
        assert mha.q_proj.weight.grad is not None


def cross_attention_layer():
    torch.manual_seed(0)
    return MultiHeadAttention(32, 4, n_kv_heads=2, kdim=24, vdim=20).eval()


def test_traced_shapes_equal_the_shapes_of_an_independent_computation():
    """Grouped-query cross-attention, T ≠ S: every reported shape is the shape of the tensor
    computed here from the layer's parameters (B 2, T 5, S 7, D 32, H 4, H_kv 2, d_h 8)."""
    mha = cross_attention_layer()
    x, key, value = torch.randn(2, 5, 32), torch.randn(2, 7, 24), torch.randn(2, 7, 20)
    with torch.no_grad(), trace_shapes(print_to=None) as trace:
        out, _ = mha(x, key, value, need_weights=True)
    (call,) = trace.calls
    reported = {s.name: s.shape for s in call.steps if s.shape is not None}
    with torch.no_grad():
        q = F.linear(x, mha.q_proj.weight, mha.q_proj.bias)  # (B, T, D)
        k = F.linear(key, mha.k_proj.weight, mha.k_proj.bias)  # (B, S, H_kv·d_h)
        v = F.linear(value, mha.v_proj.weight, mha.v_proj.bias)  # (B, S, H_kv·d_h)
        heads = q.view(2, 5, 4, 8).transpose(1, 2)  # (B, H, T, d_h)
        k = k.view(2, 7, 2, 8).transpose(1, 2).repeat_interleave(2, dim=1)  # (B, H, S, d_h)
        v = v.view(2, 7, 2, 8).transpose(1, 2).repeat_interleave(2, dim=1)
        weights = torch.softmax(heads @ k.transpose(-2, -1) / 8**0.5, dim=-1)  # (B, H, T, S)
        concat = (weights @ v).transpose(1, 2).reshape(2, 5, 32)  # (B, T, D)
        expected_out = F.linear(concat, mha.out_proj.weight, mha.out_proj.bias)
    torch.testing.assert_close(out, expected_out, atol=1e-5, rtol=1e-5)
    expected = {"x": x, "q": q, "heads": heads, "k": k, "v": v, "weights": weights,
                "concat": concat, "out": expected_out}  # fmt: skip
    assert {name: reported[name] for name in expected} == {
        name: tuple(t.shape) for name, t in expected.items()
    }


@pytest.mark.parametrize("need_weights", [False, True])
@pytest.mark.parametrize("grad", [False, True])
def test_tracing_leaves_outputs_and_weights_bit_identical(need_weights, grad):
    mha = cross_attention_layer()
    x, key, value = torch.randn(2, 5, 32), torch.randn(2, 7, 24), torch.randn(2, 7, 20)
    mask = torch.rand(2, 1, 5, 7) > 0.3
    with torch.set_grad_enabled(grad):
        plain = mha(x, key, value, mask=mask, need_weights=need_weights)
        with trace_shapes(print_to=None) as trace:
            traced = mha(x, key, value, mask=mask, need_weights=need_weights)
    assert len(trace.calls) == 1
    assert torch.equal(plain[0], traced[0])
    assert (plain[1] is None) == (traced[1] is None) == (not need_weights)
    if need_weights:
        assert torch.equal(plain[1], traced[1])


def test_trace_names_and_filters_layers_of_a_model():
    model = torch.nn.Module()
    model.layers = torch.nn.ModuleList(MultiHeadAttention(16, 2) for _ in range(3))
    x = torch.randn(1, 4, 16)
    with torch.no_grad(), trace_shapes(model, layer=1, print_to=None) as trace:
        for layer in model.layers:
            layer(x)
    assert [c.name for c in trace.calls] == ["layers.1"]


def test_bare_functional_call_is_traced():
    q = torch.randn(2, 3, 5, 4)
    with trace_shapes(print_to=None) as trace:
        attnlab.scaled_dot_product_attention(q, q, q, need_weights=True)
    assert "weights (2, 3, 5, 5) → context (2, 3, 5, 4)" in trace.summary()


def test_no_observer_is_active_outside_a_trace():
    with trace_shapes(print_to=None):
        assert observe.active_observers()
    assert observe.active_observers() == ()


def test_docstring_example_runs():
    assert doctest.testmod(attnlab.trace).failed == 0
