"""Position-wise feed-forward network: FFN(x) = W_2·act(W_1·x + b_1) + b_2, applied to every
position alone (Vaswani et al., 2017, §3.3). Shapes: (B, T, D) → (B, T, d_ff) → (B, T, D)."""

from __future__ import annotations

from torch import Tensor, nn

from attnlab.functional.checks import needs_grad
from attnlab.functional.feed_forward import ACTIVATIONS, HiddenBuffers, feed_forward
from attnlab.functional.linear import linear
from attnlab.hooks import HookPoint, apply_linear, call_hook, hooks_below
from attnlab.nn.dropout import dropout, is_identity

__all__ = ["ACTIVATIONS", "FeedForward"]


class FeedForward(nn.Module):
    """FFN(x) = W_2·act(W_1·x + b_1) + b_2. Hook points: ``hook_post`` (B, T, d_ff), the
    activation output (TransformerLens's ``mlp.hook_post``). Forward hooks on ``linear1`` and
    ``linear2`` fire (the fast path steps aside, :func:`attnlab.hooks.apply_linear`).

    Where autograd records the call (training, or gradients taken in eval mode) and the hidden
    layer has no dropout, it runs :func:`attnlab.functional.feed_forward.feed_forward`: the same
    numbers, with a backward that allocates no (B·T, d_ff) tensor. In training mode the hidden
    layer's memory is kept from one step to the next (``hidden_buffers``: two tensors at most;
    ``eval()`` and ``.to()`` release them). Saved-tensor hooks (activation checkpointing,
    ``save_on_cpu``) do not reach h and a on that route, which keeps them in memory: any hook on
    ``hook_post`` (one returning None changes nothing) sends the module down autograd's route."""

    def __init__(
        self, d_model: int, d_ff: int, *, activation: str = "gelu", dropout: float = 0.0,
        bias: bool = True,
    ) -> None:  # fmt: skip
        super().__init__()
        if activation not in ACTIVATIONS:
            raise ValueError(f"activation must be one of {sorted(ACTIVATIONS)}; got {activation!r}")
        self.activation = activation
        self.linear1 = nn.Linear(d_model, d_ff, bias=bias)  # W_1
        self.linear2 = nn.Linear(d_ff, d_model, bias=bias)  # W_2
        self.dropout = nn.Dropout(dropout)
        self.hook_post = HookPoint()  # (B, T, d_ff)
        self.hidden_buffers = HiddenBuffers()  # training: h and a reuse the last step's memory

    def train(self, mode: bool = True) -> FeedForward:
        if not mode:  # eval() gives the training step's hidden-layer memory back
            self.hidden_buffers.clear()
        return super().train(mode)

    def _apply(self, fn, recurse: bool = True):  # .to(), .double(), …: the memory is stale
        self.hidden_buffers.clear()
        return super()._apply(fn, recurse)

    def forward(self, x: Tensor) -> Tensor:  # (B, T, D) → (B, T, D)
        if not hooks_below(self):  # the fast path: no hook on linear1, linear2 or hook_post
            l1, l2 = self.linear1, self.linear2
            if is_identity(self.dropout) and needs_grad(x, l1.weight, l2.weight):
                # recorded by autograd: a backward that writes into the hidden layer's memory,
                # which training mode keeps from step to step
                buffers = self.hidden_buffers if self.training else None
                return feed_forward(x, l1.weight, l1.bias, l2.weight, l2.bias, self.activation,
                                    buffers)  # fmt: skip
            hidden = ACTIVATIONS[self.activation](linear(x, l1.weight, l1.bias))  # (B, T, d_ff)
            return linear(dropout(self.dropout, hidden), l2.weight, l2.bias)  # (B, T, D)
        hidden = ACTIVATIONS[self.activation](apply_linear(self.linear1, x))  # (B, T, d_ff)
        hidden = call_hook(self.hook_post, hidden)
        return apply_linear(self.linear2, dropout(self.dropout, hidden))  # (B, T, D)
