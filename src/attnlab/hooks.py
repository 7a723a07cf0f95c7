"""Hook points: named places in a model where an activation can be read or replaced.

A :class:`HookPoint` is an identity module. Models call it on an intermediate value
(``self.hook_z(z)``), so the value gets a dotted name from ``model.named_modules()``
(``"layers.3.self_attn.hook_z"``) and ordinary PyTorch forward hooks can watch or edit it:

    handle = model.layers[3].self_attn.hook_z.register_forward_hook(
        lambda module, inputs, output: output * 0  # a non-None return replaces the value
    )

The three functions below wrap that mechanism (TransformerLens's idea, on plain PyTorch hooks):

* :func:`run_with_cache` — run once, return every (or some) hooked value by name, detached;
* :func:`run_with_hooks` — run once with ``fn(value, name) -> Tensor | None`` hooks attached;
* :func:`ablate_heads` — a context manager that zeroes (or mean-replaces) heads via ``hook_z``.

Hook points cost nothing when unused: models call them only when :func:`has_hooks` says some
hook could fire (the module's own or a global one), so an unhooked forward pass runs the same
operations as before hook points existed. The same check makes the fast projection path step
aside (:func:`apply_linear`), so hooks on ``q_proj``, ``out_proj``, ``ff.linear1``... always fire.

Hook points of attention (``MultiHeadAttention``, dimension legend B batch, T queries,
S keys, H heads, H_kv key/value heads, d_h head size, D model width):

=================  ===================  ====================================================
name               shape                value
=================  ===================  ====================================================
``hook_q``         (B, H, T, d_h)       queries per head
``hook_k``         (B, H_kv, S, d_h)    keys per key/value head, before grouped-query
                                        expansion; with a KV cache the new positions only
``hook_v``         (B, H_kv, S, d_h)    values, as keys
``hook_pattern``   (B, H, T, S)         softmax weights; computed only when hooked
``hook_z``         (B, T, H, d_h)       per-head outputs (pattern @ v) before W_O
``hook_out``       (B, T, D)            after W_O
=================  ===================  ====================================================

Blocks (``EncoderLayer``, ``DecoderOnlyLayer``, ``DecoderLayer``) add ``hook_resid_pre``,
``hook_attn_out``, ``hook_resid_mid``, ``hook_mlp_out``, ``hook_resid_post``, and decoder
layers ``hook_cross_attn_out`` and ``hook_resid_mid_cross``; see :mod:`attnlab.nn.blocks`.
"""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

from torch import Tensor, nn
from torch.nn.modules import module as _torch_module

from attnlab.functional.linear import linear

__all__ = [
    "HookPoint",
    "ablate_heads",
    "apply_linear",
    "call_hook",
    "has_hooks",
    "hook_points",
    "run_with_cache",
    "run_with_hooks",
]

HookFn = Callable[[Tensor, str], Tensor | None]  # fn(value, name) → replacement or None
Names = Sequence[str] | Callable[[str], bool] | None


class HookPoint(nn.Module):
    """Identity module marking a named activation: ``forward(x)`` returns ``x``.

    Attach ordinary PyTorch hooks to it. A forward hook ``fn(module, (x,), output)`` may return
    a tensor, which then replaces the value for the rest of the forward pass (PyTorch semantics:
    a forward hook's non-None return replaces the module output); returning None only observes.
    """

    def forward(self, x: Tensor) -> Tensor:
        return x


# PyTorch's global hook registries (``register_module_forward_hook`` etc.): dicts that PyTorch
# fills in place and never rebinds, so they are looked up once here.
_GLOBAL_FORWARD = _torch_module._global_forward_hooks
_GLOBAL_FORWARD_PRE = _torch_module._global_forward_pre_hooks
_GLOBAL_BACKWARD = _torch_module._global_backward_hooks
_GLOBAL_BACKWARD_PRE = _torch_module._global_backward_pre_hooks


def has_hooks(module: nn.Module) -> bool:
    """True when calling ``module`` could run a hook: its own forward / pre-forward / backward
    hooks, or global ones (``torch.nn.modules.module.register_module_forward_hook`` etc.)."""
    return bool(
        module._forward_hooks or module._forward_pre_hooks
        or module._backward_hooks or module._backward_pre_hooks
        or _GLOBAL_FORWARD or _GLOBAL_FORWARD_PRE or _GLOBAL_BACKWARD or _GLOBAL_BACKWARD_PRE
    )  # fmt: skip


def hooks_below(module: nn.Module) -> bool:
    """True when a hook could fire on one of ``module``'s direct submodules (its hook points
    and projections) or globally. One pass per layer call: a layer without hooks then skips
    every per-point check (what keeps unused hook points nearly free)."""
    if _GLOBAL_FORWARD or _GLOBAL_FORWARD_PRE or _GLOBAL_BACKWARD or _GLOBAL_BACKWARD_PRE:
        return True
    for child in module._modules.values():
        if child is not None and (
            child._forward_hooks or child._forward_pre_hooks
            or child._backward_hooks or child._backward_pre_hooks
        ):  # fmt: skip
            return True
    return False


def call_hook(point: HookPoint, x: Tensor) -> Tensor:
    """``point(x)`` when a hook could fire, else ``x`` without the ``nn.Module.__call__`` cost."""
    return point(x) if has_hooks(point) else x


def apply_linear(layer: nn.Linear, x: Tensor) -> Tensor:
    """``layer(x)``: attnlab's fast :func:`~attnlab.functional.linear.linear` when no hook is
    attached, the module call itself when one is, so the hooks fire (as PyTorch's
    ``nn.TransformerEncoderLayer`` leaves its fast path when hooks are present)."""
    if has_hooks(layer):
        return layer(x)
    return linear(x, layer.weight, layer.bias)


def hook_points(model: nn.Module) -> dict[str, HookPoint]:
    """Every :class:`HookPoint` in ``model`` by dotted name (``"layers.0.self_attn.hook_z"``)."""
    return {name: m for name, m in model.named_modules() if isinstance(m, HookPoint)}


def _select(model: nn.Module, names: Names, argument: str) -> dict[str, HookPoint]:
    points = hook_points(model)
    if names is None:
        return points
    if callable(names):
        return {name: p for name, p in points.items() if names(name)}
    if isinstance(names, str):
        names = [names]
    unknown = [name for name in names if name not in points]
    if unknown:
        hints = {n: difflib.get_close_matches(n, list(points), n=3, cutoff=0.5) for n in unknown}
        detail = "; ".join(f"{n!r} (close: {hints[n] or 'none'})" for n in unknown)
        raise ValueError(
            f"{argument} must name hook points of {type(model).__name__} "
            f"({len(points)} exist, e.g. {next(iter(points), 'none')!r}); unknown: {detail}"
        )
    return {name: points[name] for name in names}


@contextlib.contextmanager
def _attached(hooks: list[tuple[HookPoint, Callable[..., Any]]]) -> Iterator[None]:
    handles = []
    try:
        for point, fn in hooks:
            handles.append(point.register_forward_hook(fn))
        yield
    finally:
        for handle in handles:
            handle.remove()


def run_with_cache(
    model: nn.Module, *args: Any, names: Names = None, **kwargs: Any
) -> tuple[Any, dict[str, Tensor]]:
    """Run ``model(*args, **kwargs)`` and return ``(output, cache)``.

    ``cache`` maps dotted hook names (``"layers.3.self_attn.hook_z"``) to the detached values
    of that call (the last one when a hook point runs several times). ``names``: None for every
    hook point, a list of names (unknown ones raise ValueError with close matches), or a
    predicate ``name -> bool``. Only the selected points are hooked, so ``hook_pattern`` costs
    the weights only when selected. Hooks are removed afterwards, even on an exception.
    """
    cache: dict[str, Tensor] = {}

    def recorder(name: str) -> Callable[..., None]:
        def record(module: nn.Module, inputs: tuple, output: Tensor) -> None:
            cache[name] = output.detach()

        return record

    points = _select(model, names, "names")
    with _attached([(point, recorder(name)) for name, point in points.items()]):
        output = model(*args, **kwargs)
    return output, cache


def run_with_hooks(
    model: nn.Module,
    *args: Any,
    fwd_hooks: Sequence[tuple[str | Callable[[str], bool], HookFn]] = (),
    **kwargs: Any,
) -> Any:
    """Run ``model(*args, **kwargs)`` with hooks attached for this call only.

    ``fwd_hooks`` is a list of ``(name, fn)``; ``name`` is a dotted hook name or a predicate
    ``name -> bool`` selecting several. ``fn(value, name)`` receives the activation and the hook
    point's name and returns a replacement tensor, or None to leave the value as is. (PyTorch's
    own hooks are ``fn(module, inputs, output)``; this signature matches what you need to
    write an intervention.) Hooks are removed in ``finally``.
    """
    hooks: list[tuple[HookPoint, Callable[..., Any]]] = []
    for selector, fn in fwd_hooks:
        for name, point in _select(model, selector, "fwd_hooks").items():
            hooks.append((point, _adapt(fn, name)))
    with _attached(hooks):
        return model(*args, **kwargs)


def _adapt(fn: HookFn, name: str) -> Callable[..., Tensor | None]:
    def hook(module: nn.Module, inputs: tuple, output: Tensor) -> Tensor | None:
        return fn(output, name)

    return hook


ABLATION_MODES = ("zero", "mean")


@contextlib.contextmanager
def ablate_heads(
    model: nn.Module, heads: Mapping[int | str, Sequence[int]], *, mode: str = "zero"
) -> Iterator[None]:
    """Inside the ``with`` block, replace the output z of the given heads (``hook_z``, before
    W_O, so W_O's bias still reaches the output).

    ``heads`` maps a layer to head indices. A layer is an int ``i``, meaning the self-attention
    of ``model.layers[i]`` (GPT, Encoder), or the dotted name of any ``MultiHeadAttention``
    (``"decoder.layers.1.cross_attn"``; an EncoderDecoder has no ``layers``, so its attentions
    are named this way). ``mode="zero"`` sets z to 0; ``"mean"`` to its mean over the batch and
    the positions of the current call (one vector per head; padded positions count too, and a
    KV-cached decoding step averages its new positions only).

    Hugging Face models (any that :func:`attnlab.capture` supports) are edited inside attnlab's
    attention function, on the head outputs before the output projection; an int is the i-th
    attention module of a one-stack model, and any name from
    :func:`attnlab.inspection.hf.attention_modules` works (``"model.layers.3.self_attn"``).
    """
    if mode not in ABLATION_MODES:
        raise ValueError(f"mode must be one of {list(ABLATION_MODES)}; got {mode!r}")
    from attnlab.inspection import hf

    if hf.is_hf_model(model):
        with hf.ablate(model, heads, mode, _check_heads):
            yield
        return
    hooks = []
    for layer, head_list in heads.items():
        attn = _attention(model, layer)
        chosen = _check_heads(layer, head_list, attn.n_heads)
        hooks.append((attn.hook_z, _ablation(chosen, mode)))
    with _attached(hooks):
        yield


def _attention(model: nn.Module, layer: int | str) -> nn.Module:
    from attnlab.nn.attention import MultiHeadAttention

    if isinstance(layer, str):
        modules = dict(model.named_modules())
        if not isinstance(modules.get(layer), MultiHeadAttention):
            valid = [n for n, m in modules.items() if isinstance(m, MultiHeadAttention)]
            raise ValueError(
                f"heads keys must be layer indices or names of MultiHeadAttention modules; got "
                f"{layer!r}; valid names: {valid[:6]}{' …' if len(valid) > 6 else ''}"
            )
        return modules[layer]
    layers = getattr(model, "layers", None)
    if not isinstance(layers, nn.ModuleList):
        raise ValueError(
            f"heads key {layer!r}: {type(model).__name__} has no `layers`; name the attention "
            "instead, e.g. 'encoder.layers.0.self_attn' or 'decoder.layers.0.cross_attn'"
        )
    if isinstance(layer, bool) or not isinstance(layer, int) or not 0 <= layer < len(layers):
        raise ValueError(f"heads keys must be layer indices in [0, {len(layers)}); got {layer!r}")
    return layers[layer].self_attn


def _check_heads(layer: int | str, head_list: Sequence[int], n_heads: int) -> list[int]:
    bad = [h for h in head_list if isinstance(h, bool) or not isinstance(h, int)
           or not 0 <= h < n_heads]  # fmt: skip
    if bad or not head_list:
        raise ValueError(
            f"heads[{layer!r}] must be a non-empty list of head indices in [0, {n_heads}); got "
            f"{list(head_list)!r}"
        )
    return sorted(set(head_list))


def _ablation(chosen: list[int], mode: str) -> Callable[..., Tensor]:
    def hook(module: nn.Module, inputs: tuple, z: Tensor) -> Tensor:  # z (B, T, H, d_h)
        return ablate_heads_(z.clone(), chosen, mode, head_axis=2)

    return hook


def ablate_heads_(x: Tensor, chosen: Sequence[int], mode: str, head_axis: int) -> Tensor:
    """Ablate, in place, the heads ``chosen`` (indices along ``head_axis``) of per-head outputs
    x (batch first, head size last, positions the remaining axis): ``"zero"`` sets them to 0,
    ``"mean"`` to their mean over the batch and the positions, one vector per head. Returns x.
    The one rule behind :func:`ablate_heads` (attnlab z (B, T, H, d_h)), Hugging Face models
    (B, H, T, d_v) and the per-head measures."""
    if mode not in ABLATION_MODES:
        raise ValueError(f"mode must be one of {list(ABLATION_MODES)}; got {mode!r}")
    heads = x.movedim(head_axis, 0)  # a view: (H, B, T, d)
    index = list(chosen)
    if mode == "zero":
        heads[index] = 0.0
    else:
        heads[index] = heads[index].mean(dim=(1, 2), keepdim=True)  # (len(chosen), 1, 1, d)
    return x
