"""What ``attnlab inspect --measure NAME`` prints: one token's sources under a measure.

For a query token at position i, each measure scores the input tokens j:

* ``attention``: the last layer's weights of row i, mean over heads (the raw-weight baseline);
* ``rollout``: row i of the attention rollout (streamed);
* ``value-norms``: per layer, ‖Σ_h α^h_ij f_h(x_j)‖ for row i (streamed);
* ``grad-attention``: per layer, Σ_h A ⊙ ∂output/∂A for row i;
* ``head-effects``: not a ranking of tokens but the (layers × heads) table of output changes.

The output that gradients and ablations explain is :func:`default_output`: the norm of token
i's final hidden state (or, for a language model, its largest logit), a neutral choice that a
script can replace with any scalar through the Report methods.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import Tensor

__all__ = ["MEASURES", "default_output", "measure_table"]

MEASURES = ("attention", "rollout", "value-norms", "grad-attention", "head-effects")


def default_output(position: int) -> Callable[[Any], Tensor]:
    """The norm of position ``position``'s final hidden state, or its largest logit."""

    def output(out: Any) -> Tensor:
        hidden = getattr(out, "last_hidden_state", None)
        if hidden is not None:
            return hidden[0, position].norm()
        return out.logits[0, position].max()

    return output


def _top(tokens: list[str], scores: Tensor, top: int) -> str:
    values, indices = scores.topk(min(top, scores.shape[-1]))
    return ", ".join(f"{tokens[j]} {v:.3f}" for v, j in zip(values.tolist(), indices.tolist(),
                                                             strict=True))  # fmt: skip


def measure_table(report: Any, token: str, measure: str, *, top: int = 3) -> str:
    """The lines ``attnlab inspect --token TOKEN --measure MEASURE`` prints."""
    if measure not in MEASURES:
        raise ValueError(f"measure must be one of {MEASURES}; got {measure!r}")
    i = report.position(token)
    tokens = report.tokens
    head = f'"{token}" (position {i}) by {measure}'
    if measure == "attention":
        row = report.weights(len(report.layers) - 1)[:, i].mean(0)  # (T,)
        return f"{head}, last layer, mean over heads: {_top(tokens, row, top)}"
    if measure == "rollout":
        return f"{head} (Abnar & Zuidema): {_top(tokens, report.rollout(target=i), top)}"
    output = default_output(i)
    if measure == "head-effects":
        effects = report.head_effects(output)  # (L, H)
        lines = [f"change of the norm of \"{token}\"'s output when a head is zeroed "
                 "(rows: layers, columns: heads):"]  # fmt: skip
        lines += ["  " + " ".join(f"{e:+7.3f}" for e in row) for row in effects.tolist()]
        return "\n".join(lines)
    if measure == "value-norms":
        rows = report.value_norms(combine_heads=True, target=i)  # (L, T), streamed
    else:
        rows = report.grad_attention(output)[:, :, i].sum(1)  # (L, T)
    lines = [f"{head}, per layer:"]
    lines += [f"  layer {layer:>2}: {_top(tokens, row, top)}" for layer, row in enumerate(rows)]
    return "\n".join(lines)
