"""Capture has no silent gaps: every kernel route, on every backend, reports exact maps."""

import pytest
import torch
from torch import nn

import attnlab
from attnlab import MultiHeadAttention, capture
from attnlab.functional import attention as attention_module


def oracle_weights(mha: MultiHeadAttention, x: torch.Tensor, causal: bool) -> torch.Tensor:
    """softmax(q·kᵀ/√d_h) in float64 from the module's own parameters: (B, H, T, T)."""
    B, T, _ = x.shape
    H, d_h = mha.n_heads, mha.head_dim
    x64 = x.double()
    q = (x64 @ mha.q_proj.weight.double().T + mha.q_proj.bias.double()).view(B, T, H, d_h)
    k = (x64 @ mha.k_proj.weight.double().T + mha.k_proj.bias.double()).view(B, T, H, d_h)
    scores = torch.einsum("bihd,bjhd->bhij", q, k) / d_h**0.5
    if causal:
        hidden = torch.ones(T, T, dtype=torch.bool).triu(1)
        scores = scores.masked_fill(hidden, float("-inf"))
    return torch.softmax(scores, dim=-1)


class TwoLayers(nn.Module):
    def __init__(self, dropout: float = 0.0) -> None:
        super().__init__()
        self.first = MultiHeadAttention(16, 4, dropout=dropout)
        self.second = MultiHeadAttention(16, 4, dropout=dropout)

    def forward(self, x, need_weights_first=False):
        h, _ = self.first(x, causal=True, need_weights=need_weights_first)
        return self.second(h, causal=True)[0], h


@pytest.mark.parametrize("backend", attnlab.BACKENDS)
@pytest.mark.parametrize("grad", [False, True])
@pytest.mark.parametrize("need_weights_first", [False, True])
def test_every_layer_is_captured_exactly_on_every_route(backend, grad, need_weights_first):
    torch.manual_seed(0)
    model = TwoLayers().eval()
    x = torch.randn(2, 7, 16, requires_grad=grad)
    with attnlab.backend(backend), torch.set_grad_enabled(grad), capture(model) as maps:
        _, h = model(x, need_weights_first)
    assert list(maps) == ["first", "second"]
    with torch.no_grad():
        expected = [oracle_weights(model.first, x.detach(), True),
                    oracle_weights(model.second, h.detach(), True)]  # fmt: skip
    for name, want in zip(("first", "second"), expected, strict=True):
        got = maps[name].dense().double()
        torch.testing.assert_close(got, want, atol=2e-5, rtol=1e-4)


def test_training_mode_with_dropout_records_the_weights_before_dropout():
    torch.manual_seed(0)
    model = TwoLayers(dropout=0.5).train()
    x = torch.randn(2, 7, 16)
    with capture(model) as maps:
        model(x)
    with torch.no_grad():
        want = oracle_weights(model.first, x, True)
    torch.testing.assert_close(maps["first"].dense().double(), want, atol=2e-5, rtol=1e-4)
    assert len(maps) == 2


def test_a_call_that_does_not_report_raises_naming_the_layer(monkeypatch):
    monkeypatch.setattr(attention_module, "_emit", lambda *args: None)
    model = TwoLayers().eval()
    error = pytest.raises(ValueError, match="capture missed attention calls .*first")
    with error, capture(model):
        model(torch.randn(1, 5, 16))


def test_capture_and_a_hooked_pattern_work_together():
    torch.manual_seed(0)
    model = TwoLayers().eval()
    seen = []
    model.first.hook_pattern.register_forward_hook(lambda m, i, o: seen.append(o))
    x = torch.randn(2, 7, 16)
    with torch.no_grad(), capture(model) as maps:
        model(x)
    assert list(maps) == ["first", "second"]
    torch.testing.assert_close(maps["first"].dense(), seen[0], atol=1e-6, rtol=1e-5)


def test_the_trace_says_when_a_hooked_pattern_makes_weights_computed():
    mha = MultiHeadAttention(16, 4).eval()
    mha.hook_pattern.register_forward_hook(lambda m, i, o: None)
    with torch.no_grad(), attnlab.trace_shapes(print_to=None) as trace:
        mha(torch.randn(1, 3, 16))
    (call,) = trace.calls
    assert any(s.name == "hook_pattern" for s in call.steps)
    assert call.kernel.startswith("blocked")  # the weights were asked for
    assert "hook_pattern" in str(trace)
