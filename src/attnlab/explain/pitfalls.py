"""The notes' three pitfalls, made on purpose on the model's own tensors.

* ``scaling``: forgetting 1/√d_k. The scores' spread grows like √d_k, the softmax saturates (one
  key takes almost all the weight) and its gradients vanish.
* ``mask``: forgetting the causal mask in a language model. Query i reads keys after it: the
  future leaks into training, and the model fails when generating, where the future is unknown.
* ``shapes``: splitting the queries into heads but not the keys: q is (1, H, T, d_h), k stays
  (1, T, D). attnlab refuses the call before computing anything; the page shows its message and
  the step where the shapes part ways.
"""

from __future__ import annotations

from attnlab.explain.anatomy import Anatomy
from attnlab.explain.walk import Variant, heads_of

__all__ = ["PITFALLS", "check_pitfall", "pitfall_variant", "shapes_pitfall"]

PITFALLS = {
    "scaling": "forgetting to divide the scores by √d_k",
    "mask": "forgetting the causal mask",
    "shapes": "splitting the queries into heads but not the keys",
}


def check_pitfall(pitfall: str | None, causal: bool | None = None, *, flag=str,
                  about: str = "") -> None:  # fmt: skip
    """``pitfall`` is one of :data:`PITFALLS`; ``mask`` needs a causal model (``causal``
    False: refused, naming the model ``about``; None: not known yet). ``flag`` spells an
    argument's name: ``"--" + name`` on the command line."""
    if pitfall is None:
        return
    if pitfall not in PITFALLS:
        raise ValueError(f"{flag('pitfall')} must be one of {sorted(PITFALLS)}; got {pitfall!r}")
    if causal is False and pitfall == "mask":
        raise ValueError(
            f"{flag('pitfall')} mask needs a causal model ({flag('model')}: an attnlab GPT); in "
            f"an encoder such as {about or 'this one'} every token sees every other"
        )


def pitfall_variant(pitfall: str | None, model_variant: Variant) -> Variant:
    """The variant the page opens on: the model's own, or with the mistake made."""
    if pitfall == "scaling":
        return Variant(scale=False, causal=model_variant.causal)
    if pitfall == "mask":
        return Variant(scale=model_variant.scale, causal=False)
    return model_variant


def shapes_pitfall(anatomy: Anatomy) -> dict:
    """Call :func:`attnlab.scaled_dot_product_attention` with the model's queries split into
    heads and its keys not split; return the shapes step by step, both ways, and attnlab's
    error message (the exact text the call raised)."""
    from attnlab import scaled_dot_product_attention

    a = anatomy
    T, D, H, d_h = a.parts["q"].shape[0], a.d_model, a.n_heads, a.d_head
    q = heads_of(a.parts["q"], H)[None]  # (T, D) → (1, H, T, d_h)
    k_unsplit = a.parts["k"][None]  # (1, T, D): the mistake, keys never split
    v = heads_of(a.parts["v"], H)[None]
    try:
        scaled_dot_product_attention(q, k_unsplit, v)
    except ValueError as err:
        message = str(err)
    else:  # pragma: no cover - attnlab checks d_k before computing
        raise AssertionError("attnlab accepted keys of the wrong size")
    return {
        "message": message,
        "steps": [  # (step, correct shape, mistaken shape)
            ["x", f"(1, {T}, {D})", f"(1, {T}, {D})"],
            ["q = x·W_Q, k = x·W_K", f"(1, {T}, {D})", f"(1, {T}, {D})"],
            [
                f"view as heads ({D} → {H}×{d_h})",
                f"q, k (1, {T}, {H}, {d_h})",
                f"q (1, {T}, {H}, {d_h}), k (1, {T}, {D}) ← not split",
            ],
            [
                "transpose to (B, H, T, d_h)",
                f"q, k (1, {H}, {T}, {d_h})",
                f"q (1, {H}, {T}, {d_h}), k (1, {T}, {D})",
            ],
            ["scores q·kᵀ", f"(1, {H}, {T}, {T})", "error: d_k differs (" + f"{d_h} vs {D})"],
        ],
    }
