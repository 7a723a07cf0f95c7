"""Pictures of measures beyond raw weights (:mod:`attnlab.measures`): what `attnlab show
--measure NAME` draws, and what the page's measure selector switches between.

Each measure becomes an :class:`AttentionPayload` (values in place of weights) through
:meth:`AttentionPayload.from_values`: rollout as one (1, 1, T, T) map, value norms and
gradient × attention as (L, H, T, T), exact for short texts and block means for long ones.
"""

from __future__ import annotations

from dataclasses import replace

from attnlab.measures.tables import default_output
from attnlab.viz.payload import AttentionPayload
from attnlab.viz.tokens import shown

__all__ = ["MEASURES", "measure_payload", "with_measures"]

# name → (what the values are, one line on what they mean). "attention" is the raw weights.
MEASURES = {
    "attention": (
        "attention weight",
        "how much each query's softmax weighs each key, in one head: where the head looks, not "
        "what the model used",
    ),
    "rollout": (
        "attention rollout",
        "how much of each input token (column) reaches each top-layer position (row) through "
        "attention and the residual stream, head mean, all layers (Abnar & Zuidema); ignores "
        "value vectors and MLPs",
    ),
    "value-norms": (
        "value-weighted norm",
        "‖α·f(x)‖: the size of what each key actually adds to the query's output in one head "
        "(Kobayashi et al.), not only how much it is weighed",
    ),
    "grad-attention": (
        "gradient × attention",
        "A ⊙ ∂output/∂A, signed: how much each weight, as used, moves the output "
        "(the norm of {token}'s final hidden state)",
    ),
}


def measure_payload(report, name: str, *, token: str | None = None,
                    max_cells: int = 128) -> AttentionPayload:  # fmt: skip
    """``report``'s text under measure ``name`` (a key of :data:`MEASURES` other than
    ``attention``). Gradient × attention explains the norm of ``token``'s final hidden state
    (default: the last token), as `attnlab inspect --measure` does."""
    if name not in MEASURES or name == "attention":
        raise ValueError(f"measure must be one of {tuple(MEASURES)[1:]}; got {name!r}")
    layers, meaning = tuple(report.layers), MEASURES[name][1]
    if name == "rollout":
        values, layers = report.rollout()[None, None], ("rollout, all layers",)
    elif name == "value-norms":
        values = report.value_norms()
    else:
        i = len(report.tokens) - 1 if token is None else report.position(token)
        values = report.grad_attention(default_output(i))
        drawn = shown(report.tokens[i], byte_level=report.byte_level)
        meaning = meaning.replace("{token}", f'"{drawn}"')
    return AttentionPayload.from_values(
        report.text, tuple(report.tokens), layers, values, measure=name, meaning=meaning,
        max_cells=max_cells, byte_level=report.byte_level,
    )  # fmt: skip


def with_measures(report, names: list[str], *, token: str | None = None) -> AttentionPayload:
    """The raw-weight payload of ``report`` carrying ``names`` for the page's selector."""
    extra = tuple(measure_payload(report, n, token=token) for n in names)
    raw = AttentionPayload.from_report(report)
    return replace(raw, meaning=MEASURES["attention"][1], measures=extra)
