import torch
from torch import nn

from attnlab.nn.dropout import dropout


def test_dropout_runs_only_when_it_does_something():
    x = torch.ones(1000)
    module = nn.Dropout(0.5)
    module.train()
    out = dropout(module, x)
    assert (out == 0).any() and torch.allclose(out[out != 0], torch.full_like(out[out != 0], 2.0))
    module.eval()
    assert dropout(module, x) is x  # eval: the identity, without a module call
    assert dropout(nn.Dropout(0.0).train(), x) is x  # p = 0: the identity
