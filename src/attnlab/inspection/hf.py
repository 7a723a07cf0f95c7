"""Capture for Hugging Face models that keep their default SDPA attention.

transformers dispatches attention through a registry (``ALL_ATTENTION_FUNCTIONS``). For the
duration of a capture, its ``"sdpa"`` entry is replaced by a function that runs the same
computation through :func:`attnlab.scaled_dot_product_attention` (PyTorch's CPU flash kernel),
inside ``observe.scope(module)`` so the call is named by the module's dotted path
(``encoder.layer.3.attention.self``, ``transformer.h.3.attn``). The model is not switched to its
slow eager path and keeps no (B, H, N, N) maps.

Supported: BERT-family encoders (``model_type`` bert) and GPT-2 (gpt2). Other Hugging Face
models raise a ValueError naming their class instead of returning an empty capture.

The registry is process-wide: while a capture is open, other threads' Hugging Face SDPA calls
also run through attnlab's kernel (same results; they are recorded only by observers active in
their own context, since observers live in a ContextVar).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from torch import Tensor, nn

from attnlab import observe
from attnlab.functional.attention import scaled_dot_product_attention

__all__ = ["SUPPORTED_MODEL_TYPES", "hf_support"]

SUPPORTED_MODEL_TYPES = ("bert", "gpt2")


def _is_hf(model: nn.Module) -> bool:
    return hasattr(model, "config") and hasattr(model.config, "model_type")


def _sdpa_through_attnlab(
    module: nn.Module, query: Tensor, key: Tensor, value: Tensor,
    attention_mask: Tensor | None, dropout: float = 0.0, scaling: float | None = None,
    is_causal: bool | None = None, **kwargs: object,
) -> tuple[Tensor, None]:  # fmt: skip
    """Same contract as transformers' ``sdpa_attention_forward``: q, k, v (B, H, T, d) →
    (B, T, H, d), None."""
    q_length, kv_length = query.shape[2], key.shape[2]
    is_causal = is_causal if is_causal is not None else getattr(module, "is_causal", True)
    is_causal = bool(q_length > 1 and attention_mask is None and is_causal)
    if is_causal and kv_length > q_length:  # as transformers does: start-aligned causal
        key, value = key[:, :, :q_length], value[:, :, :q_length]
    with observe.scope(module):
        out, _ = scaled_dot_product_attention(
            query, key, value, attention_mask, causal=is_causal, scale=scaling,
            dropout=dropout, training=module.training,
        )  # fmt: skip
    return out.transpose(1, 2).contiguous(), None  # (B, T, H, d)


@contextlib.contextmanager
def hf_support(model: nn.Module) -> Iterator[None]:
    """Route a supported Hugging Face model's SDPA attention through attnlab for the block;
    check that anything else has attnlab attention layers to observe."""
    if not _is_hf(model):
        from attnlab.nn.attention import MultiHeadAttention

        if not any(isinstance(m, MultiHeadAttention) for m in model.modules()):
            raise ValueError(
                f"cannot capture attention from {type(model).__name__}: it has no "
                "attnlab.MultiHeadAttention layer and is not a supported Hugging Face model "
                f"(model_type in {SUPPORTED_MODEL_TYPES})"
            )
        yield
        return
    config = model.config
    if config.model_type not in SUPPORTED_MODEL_TYPES:
        raise ValueError(
            f"capture does not support Hugging Face {type(model).__name__} (model_type "
            f"{config.model_type!r}); supported model types: {SUPPORTED_MODEL_TYPES}"
        )
    implementation = getattr(config, "_attn_implementation", None)
    if implementation != "sdpa":
        raise ValueError(
            f"capture needs {type(model).__name__} to run its default SDPA attention; it uses "
            f"{implementation!r}. Load it with attn_implementation='sdpa' (eager models already "
            "return weights with output_attentions=True)"
        )
    from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS

    previous = ALL_ATTENTION_FUNCTIONS["sdpa"]
    ALL_ATTENTION_FUNCTIONS["sdpa"] = _sdpa_through_attnlab
    try:
        yield
    finally:
        ALL_ATTENTION_FUNCTIONS["sdpa"] = previous
