"""Optimizer state restored from a checkpoint takes its parameters' memory layout again."""

import torch
from torch import nn

from attnlab.functional.linear import store_weights_transposed_
from attnlab.train.checkpoint import restore_optimizer


def test_fused_adamw_resumes_exactly_on_transposed_weights():
    torch.manual_seed(0)
    layer = store_weights_transposed_(nn.Linear(6, 4))
    twin = store_weights_transposed_(nn.Linear(6, 4))
    twin.load_state_dict(layer.state_dict())
    x = torch.randn(5, 6)

    def step(model, opt):
        model(x).square().sum().backward()
        opt.step()
        opt.zero_grad()

    opt = torch.optim.AdamW(layer.parameters(), lr=0.1, fused=True)
    step(layer, opt)
    saved = opt.state_dict()  # as written to disk: every tensor contiguous
    saved = {**saved, "state": {i: {k: v.contiguous().clone() for k, v in s.items()}
                                for i, s in saved["state"].items()}}  # fmt: skip
    twin.load_state_dict(layer.state_dict())
    resumed = torch.optim.AdamW(twin.parameters(), lr=0.1, fused=True)
    restore_optimizer(resumed, saved)
    assert resumed.state[twin.weight]["exp_avg"].stride() == twin.weight.stride()
    for _ in range(2):
        step(layer, opt)
        step(twin, resumed)
    torch.testing.assert_close(twin.weight, layer.weight)
