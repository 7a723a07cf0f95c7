"""attnlab's linear against torch.nn.functional.linear on every route (fused addmm, the
input-split GEMV for few rows on (in, out) weights), and the (in, out) memory order: same values,
kept through loading and dtype changes, used by GPT and by the stacked inference projection."""

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn
from torch.nn import functional as F

from attnlab import GPT
from attnlab.functional.linear import (
    SPLIT_MAX_ROWS,
    linear,
    store_weights_transposed_,
    transposed_layout,
)
from attnlab.models.config import GPTConfig


@pytest.fixture(autouse=True)
def _two_threads():
    """The split route needs more than one thread: run it whatever the machine has."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_transposed_layout_keeps_values_and_results():
    layer = nn.Linear(16, 24)
    x = torch.randn(3, 5, 16)
    before = layer(x)
    param = layer.weight
    store_weights_transposed_(layer)
    assert layer.weight is param and layer.weight.shape == (24, 16)
    assert layer.weight.stride() == (1, 24)
    torch.testing.assert_close(linear(x, layer.weight, layer.bias), before)
    torch.testing.assert_close(transposed_layout(layer.weight), layer.weight, rtol=0, atol=0)


def test_gpt_stores_its_projections_in_order_and_keeps_it_through_a_checkpoint():
    config = GPTConfig(vocab_size=30, max_len=16, d_model=32, n_heads=4, n_layers=2)
    model = GPT(config).eval()
    linears = [m for m in model.layers.modules() if isinstance(m, nn.Linear)]
    assert linears and all(m.weight.stride(0) == 1 for m in linears)
    state = {k: v.contiguous() for k, v in model.state_dict().items()}  # as saved to disk
    loaded = GPT(config).eval()
    loaded.load_state_dict(state)
    assert all(m.weight.stride(0) == 1 for m in loaded.layers.modules() if isinstance(m, nn.Linear))
    ids = torch.randint(0, 30, (2, 10))
    torch.testing.assert_close(loaded(ids).logits, model(ids).logits)
    with torch.no_grad():  # the stacked inference copy of W_Q, W_K, W_V keeps the order too
        weight, _ = loaded.layers[0].self_attn._stacked_qkv()
    assert weight.stride(0) == 1
    assert loaded.double().layers[0].ff.linear1.weight.stride(0) == 1


@settings(max_examples=80, deadline=None)
@given(
    lead=st.sampled_from([(), (1,), (3,), (2, 1), (1, 40)]),
    d_in=st.sampled_from([1, 6, 8, 12, 384]),
    d_out=st.sampled_from([1, 5, 16]),
    with_bias=st.booleans(),
    transposed=st.booleans(),
    dtype=st.sampled_from([torch.float32, torch.float64]),
    seed=st.integers(0, 2**31 - 1),
)
def test_matches_torch_linear_on_every_route(lead, d_in, d_out, with_bias, transposed, dtype, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*lead, d_in, generator=g, dtype=dtype)
    weight = torch.randn(d_out, d_in, generator=g, dtype=dtype)
    bias = torch.randn(d_out, generator=g, dtype=dtype) if with_bias else None
    if transposed:  # with ≤ SPLIT_MAX_ROWS rows and d_in divisible: the split route
        weight = transposed_layout(weight)
    tol = 1e-5 if dtype == torch.float32 else 1e-12
    got = linear(x, weight, bias)
    assert got.shape == (*lead, d_out)
    torch.testing.assert_close(got, F.linear(x, weight, bias), atol=tol * d_in, rtol=tol)


@pytest.mark.parametrize("rows", [1, SPLIT_MAX_ROWS, SPLIT_MAX_ROWS + 1])
def test_split_route_carries_gradients(rows):
    weight = transposed_layout(torch.randn(7, 8, dtype=torch.float64)).requires_grad_()
    bias = torch.randn(7, dtype=torch.float64, requires_grad=True)
    x = torch.randn(rows, 8, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda *a: linear(*a), (x, weight, bias))


def test_split_route_is_taken_for_few_rows_on_transposed_weights(monkeypatch):
    import attnlab.functional.linear as module

    calls = []
    original = module._split_input_linear
    monkeypatch.setattr(module, "_split_input_linear", lambda *a: calls.append(1) or original(*a))
    weight = transposed_layout(torch.randn(16, 8))
    linear(torch.randn(1, 1, 8), weight)
    linear(torch.randn(SPLIT_MAX_ROWS + 1, 8), weight)  # a real GEMM: not split
    linear(torch.randn(1, 8), torch.randn(16, 8))  # (out, in) order: not split
    assert calls == [1]


def test_encoder_decoder_stores_its_decoder_projections_in_order():
    from attnlab import EncoderDecoder
    from attnlab.models.config import EncoderDecoderConfig

    config = EncoderDecoderConfig(src_vocab_size=20, tgt_vocab_size=20, max_len=16, d_model=32,
                                  d_ff=64, n_heads=4, dropout=0.0)  # fmt: skip
    model = EncoderDecoder(config)
    decoder = [m for m in model.decoder.layers.modules() if isinstance(m, nn.Linear)]
    assert decoder and all(m.weight.stride(0) == 1 for m in decoder)


@pytest.mark.parametrize("threads", [2, 3, 4])
def test_split_route_with_more_threads_and_uneven_widths(threads):
    torch.set_num_threads(threads)  # the fixture restores the count
    weight = transposed_layout(torch.randn(10, 12, dtype=torch.float64))
    x = torch.randn(3, 12, dtype=torch.float64)
    torch.testing.assert_close(linear(x, weight), F.linear(x, weight))
    x = torch.randn(3, 14, dtype=torch.float64)  # 14 % 4 != 0 etc.: the plain GEMM
    weight = transposed_layout(torch.randn(10, 14, dtype=torch.float64))
    torch.testing.assert_close(linear(x, weight), F.linear(x, weight))


def test_half_precision_and_empty_inputs_keep_the_single_gemm():
    weight = transposed_layout(torch.randn(16, 8)).bfloat16()
    x = torch.randn(2, 8, dtype=torch.bfloat16)
    assert torch.equal(linear(x, weight), F.linear(x, weight))
    empty_in = torch.randn(3, 0)
    assert linear(empty_in, transposed_layout(torch.randn(5, 0))).shape == (3, 5)
