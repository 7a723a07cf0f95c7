"""Capture for Hugging Face models: attnlab's attention function, registered by name.

transformers routes attention through a registry (``AttentionInterface``) in about 350 model
files. For the duration of a capture :func:`hf_support`:

1. registers :func:`attnlab.inspection.hf_attention.attention_forward` as ``"attnlab"`` in
   ``transformers.AttentionInterface`` and the SDPA mask builder under the same name in
   ``transformers.masking_utils.AttentionMaskInterface`` (without it no padding, causal or
   sliding-window mask would reach the function);
2. switches the model with ``model.set_attn_implementation("attnlab")``, which also switches
   sub-models (encoder, decoder, vision tower), checks that every sub-model took it, and
3. restores every (sub-)configuration's attention implementation exactly on exit, also when the
   block raises.

On the CPU the model runs PyTorch's flash kernel on the inputs its SDPA path would give it
(bit-identical outputs); on other devices, with softcap, or with a backend other than auto or
flash-cpu selected, the exact blocked route of :mod:`attnlab.functional.portable` runs instead.
No (B, H, N, N) weights are kept; attention calls are named by the module's dotted path
(``model.layers.3.self_attn``, ``decoder.block.0.layer.1.EncDecAttention``).

Limits: the switch is on the model's configuration (process-wide) while capture observers and
``ablate_heads`` edits live in the calling context, so calls the model makes in another thread
(a streamer's worker) are computed exactly but neither recorded nor edited.

Models whose attention bypasses the interface (Bloom, Falcon, GPT-Neo, MPT, DeBERTa, XLNet,
Longformer, ...: their files compute attention themselves) are refused with a ValueError naming
the class, and left exactly as they were.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence

from torch import Tensor, nn

__all__ = [
    "ATTENTION_NAME", "ablate", "attention_modules", "hf_support", "is_hf_model",
    "pretrained_modules", "register",
]  # fmt: skip

ATTENTION_NAME = "attnlab"


def is_hf_model(model: nn.Module) -> bool:
    return hasattr(model, "config") and hasattr(model.config, "model_type")


def register() -> None:
    """Register attnlab's attention function and its mask builder under ``"attnlab"`` (once per
    process; registering again replaces the same entries)."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    from attnlab.inspection.hf_attention import attention_forward

    AttentionInterface.register(ATTENTION_NAME, attention_forward)
    AttentionMaskInterface.register(ATTENTION_NAME, sdpa_mask)


@contextlib.contextmanager
def hf_support(model: nn.Module) -> Iterator[None]:
    """Run a Hugging Face model's attention through attnlab for the block; check that anything
    else has attnlab attention layers to observe."""
    if not is_hf_model(model):
        _check_attnlab_model(model)
        yield
        return
    register()
    with restoring_implementations(model):
        _switch(model)
        yield


@contextlib.contextmanager
def restoring_implementations(model: nn.Module) -> Iterator[None]:
    """Whatever the block sets, every (sub-)configuration of the model gets its attention
    implementation back exactly on exit, also when the block raises."""
    saved = _implementations(model)
    try:
        yield
    finally:
        for config, implementation in saved:
            config._attn_implementation_internal = implementation


def _switch(model: nn.Module) -> None:
    name = type(model).__name__
    try:
        model.set_attn_implementation(ATTENTION_NAME)
    except (ValueError, TypeError, ImportError) as err:
        raise ValueError(f"cannot capture attention from {name}: {err}") from None
    missed = sorted({type(m).__name__ for m in pretrained_modules(model)
                     if m.config._attn_implementation != ATTENTION_NAME})  # fmt: skip
    if missed:
        raise ValueError(
            f"cannot capture attention from {name}: {', '.join(missed)} computes attention in "
            "its own code instead of through transformers' AttentionInterface (as Bloom, "
            "Falcon, GPT-Neo, MPT, DeBERTa, XLNet and Longformer do), so attnlab cannot see it. "
            "Load it with attn_implementation='eager' and pass output_attentions=True for its "
            "weights"
        )


def pretrained_modules(model: nn.Module) -> list[nn.Module]:
    """The model and its Hugging Face sub-models (encoder, decoder, vision tower, ...)."""
    from transformers import PreTrainedModel

    return [m for m in model.modules() if isinstance(m, PreTrainedModel)]


def _implementations(model: nn.Module) -> list[tuple[object, object]]:
    """Every (sub-)configuration of the model with its attention implementation, to restore."""
    seen: dict[int, object] = {}
    stack = [m.config for m in pretrained_modules(model)]
    while stack:
        config = stack.pop()
        if id(config) in seen:
            continue
        seen[id(config)] = config
        for key in getattr(config, "sub_configs", {}) or {}:
            sub = getattr(config, key, None)
            if sub is not None and hasattr(sub, "_attn_implementation_internal"):
                stack.append(sub)
    return [(c, c._attn_implementation_internal) for c in seen.values()]


def _check_attnlab_model(model: nn.Module) -> None:
    from attnlab.nn.attention import MultiHeadAttention

    if not any(isinstance(m, MultiHeadAttention) for m in model.modules()):
        raise ValueError(
            f"cannot capture attention from {type(model).__name__}: it has no "
            "attnlab.MultiHeadAttention layer and is not a Hugging Face model"
        )


def attention_modules(model: nn.Module) -> dict[str, nn.Module]:
    """The modules that call transformers' attention interface, by dotted name, in model order
    (``model.layers.0.self_attn``, ``encoder.layer.0.attention.self``, ...)."""
    return {name: m for name, m in model.named_modules() if _calls_interface(type(m))}


@functools.cache
def _calls_interface(cls: type) -> bool:
    """Whether ``cls.forward`` dispatches through the attention registry (its source looks the
    function up by ``config._attn_implementation``)."""
    if not cls.__name__.endswith(("Attention", "SelfAttention")):
        return False
    try:
        source = inspect.getsource(cls.forward)
    except (OSError, TypeError):
        return False
    return "ALL_ATTENTION_FUNCTIONS" in source or "_attn_implementation" in source


@contextlib.contextmanager
def ablate(
    model: nn.Module,
    heads: Mapping[int | str, Sequence[int]],
    mode: str,
    check_heads: Callable[[int | str, Sequence[int], int], list[int]],
) -> Iterator[None]:
    """:func:`attnlab.ablate_heads` for a Hugging Face model: inside attnlab's attention
    function, the chosen heads' outputs (before the output projection) are set to 0 or to their
    mean over the batch and the positions of the call."""
    from attnlab.inspection.hf_attention import head_edits

    modules = attention_modules(model)
    edits: dict[int, Callable[[Tensor], Tensor]] = {}
    for layer, head_list in heads.items():
        module = _module_of(model, modules, layer)
        chosen = check_heads(layer, head_list, _n_heads(module))
        edits[id(module)] = _edit(chosen, mode)
    with hf_support(model):
        token = head_edits.set({**(head_edits.get() or {}), **edits})
        try:
            yield
        finally:
            head_edits.reset(token)


def _module_of(model: nn.Module, modules: dict[str, nn.Module], layer: int | str) -> nn.Module:
    names = list(modules)
    if isinstance(layer, str):
        if layer not in modules:
            raise ValueError(
                f"heads key {layer!r} is not an attention module of {type(model).__name__}; "
                f"valid names: {names[:4]}{' …' if len(names) > 4 else ''}"
            )
        return modules[layer]
    if getattr(model.config, "is_encoder_decoder", False):
        raise ValueError(
            f"heads key {layer!r}: {type(model).__name__} has an encoder and a decoder; name the "
            f"attention instead, e.g. {names[0]!r} or {names[-1]!r}"
        )
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < len(names):
        raise ValueError(f"heads keys must be layer indices in [0, {len(names)}); got {layer!r}")
    return modules[names[layer]]


def _n_heads(module: nn.Module) -> int:
    for attribute in ("num_heads", "num_attention_heads", "n_heads", "n_head"):
        value = getattr(module, attribute, None)
        if isinstance(value, int):
            return value
    return int(module.config.num_attention_heads)


def _edit(chosen: list[int], mode: str) -> Callable[[Tensor], Tensor]:
    from attnlab.hooks import ablate_heads_

    def edit(out: Tensor) -> Tensor:  # (B, H, Lq, d_v)
        return ablate_heads_(out.clone(), chosen, mode, head_axis=1)

    return edit
