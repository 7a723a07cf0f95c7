import doctest
import io

import torch

import attnlab
import attnlab.trace
from attnlab import MultiHeadAttention, observe, trace_shapes


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


def test_trace_says_why_the_reference_kernel_ran():
    with trace_shapes(print_to=None) as trace:
        MultiHeadAttention(16, 2)(torch.randn(1, 3, 16), need_weights=True)
    assert trace.calls[0].kernel == "reference: need_weights with autograd"


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
