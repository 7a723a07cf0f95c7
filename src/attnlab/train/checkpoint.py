"""Training checkpoints: one safetensors file holding the model weights, the optimizer's tensors
and, as JSON metadata, the training config, the tokenizer, the step and the optimizer's scalar
settings. Written atomically (temporary file + rename), so a kill at any moment — or a disk that
fills while saving — leaves the previous checkpoint intact. Loading never unpickles anything and
refuses a file from another configuration with a clear message.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from attnlab.atomic import atomic_write
from attnlab.train.config import TrainConfig

__all__ = ["TrainingState", "load_training", "restore_optimizer", "save_training"]

FORMAT = "attnlab.training/1"
# Config fields that change the model's shape or the data: a checkpoint only resumes under them.
_MUST_MATCH = ("task", "corpus", "tokenizer", "bpe_vocab", "max_words", "n_layers", "n_heads",
               "d_model", "d_ff", "context", "seed", "val_fraction")  # fmt: skip


@dataclass
class TrainingState:
    step: int  # optimiser steps completed
    config: TrainConfig
    tokenizer_json: str
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any] | None


def _model_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    out, seen = {}, set()
    for name, tensor in model.state_dict().items():
        if tensor.data_ptr() in seen:  # tied weights are stored once
            continue
        seen.add(tensor.data_ptr())
        out[f"model/{name}"] = tensor.detach().contiguous()
    return out


def save_training(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                  step: int, config: TrainConfig, tokenizer_json: str) -> Path:  # fmt: skip
    tensors = _model_tensors(model)
    opt = optimizer.state_dict()
    for index, state in opt["state"].items():
        for key, value in state.items():
            value = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"optim/{index}/{key}"] = value.detach().contiguous()
    meta = {
        "format": FORMAT, "step": str(step), "config": json.dumps(config.to_dict()),
        "tokenizer": tokenizer_json, "param_groups": json.dumps(opt["param_groups"]),
    }  # fmt: skip
    return atomic_write(path, lambda tmp: save_file(tensors, tmp, metadata=meta))


def load_training(path: str | Path, expected: TrainConfig | None = None) -> TrainingState:
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    except Exception as err:  # truncated/corrupted files raise safetensors' own errors
        raise ValueError(
            f"{path} is not a readable checkpoint (truncated or corrupted?): {err}"
        ) from None
    if meta.get("format") != FORMAT:
        raise ValueError(
            f"{path} is not an attnlab training checkpoint (format {meta.get('format')!r})"
        )
    config = TrainConfig(**json.loads(meta["config"]))
    if expected is not None:
        different = [
            f"{k}: checkpoint {getattr(config, k)!r}, requested {getattr(expected, k)!r}"
            for k in _MUST_MATCH
            if getattr(config, k) != getattr(expected, k)
        ]
        if different:
            raise ValueError(
                f"{path} was written by another configuration: " + "; ".join(different)
            )
    model_state = {k[len("model/") :]: v for k, v in tensors.items() if k.startswith("model/")}
    optim: dict[int, dict[str, torch.Tensor]] = {}
    for k, v in tensors.items():
        if k.startswith("optim/"):
            _, index, key = k.split("/", 2)
            optim.setdefault(int(index), {})[key] = v
    optimizer_state = {"state": optim, "param_groups": json.loads(meta["param_groups"])}
    return TrainingState(int(meta["step"]), config, meta["tokenizer"], model_state, optimizer_state)


def restore_model(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Load weights, allowing only tied duplicates to be absent."""
    result = model.load_state_dict(state, strict=False)
    tied = {"lm_head.weight", "output.weight"}
    missing = sorted(set(result.missing_keys) - tied)
    if missing or result.unexpected_keys:
        raise ValueError(
            f"checkpoint does not fit the model: missing {missing[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}"
        )


def restore_optimizer(optimizer: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """Load optimizer state saved by :func:`save_training`, each per-parameter tensor laid out
    in memory as its parameter is. Saved state is contiguous; a parameter stored (in, out)
    (:func:`attnlab.functional.linear.transposed_layout`) is not, and PyTorch's fused AdamW
    reads state and parameter as if their strides matched."""
    optimizer.load_state_dict(state)
    for group in optimizer.param_groups:
        for p in group["params"]:
            for key, t in optimizer.state.get(p, {}).items():
                if torch.is_tensor(t) and t.shape == p.shape and t.stride() != p.stride():
                    optimizer.state[p][key] = torch.empty_like(p, dtype=t.dtype).copy_(t)
