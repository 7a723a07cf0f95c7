"""The (in, out) weight memory order: same values and results, kept through loading and
dtype changes, used by GPT and by the stacked inference projection."""

import torch
from torch import nn

from attnlab import GPT
from attnlab.functional.linear import linear, store_weight_transposed_, transposed_layout
from attnlab.models.config import GPTConfig


def test_transposed_layout_keeps_values_and_results():
    layer = nn.Linear(16, 24)
    x = torch.randn(3, 5, 16)
    before = layer(x)
    param = layer.weight
    store_weight_transposed_(layer)
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
