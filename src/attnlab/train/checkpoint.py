"""Training checkpoints: a model checkpoint (:mod:`attnlab.models.checkpoint`, one safetensors
file) plus the optimizer's tensors under ``optimizer/<param index>/<name>`` and one more metadata
entry, "training": JSON {"step", "config" (the TrainConfig), "tokenizer" (the run's tokenizer
JSON), "param_groups" (the optimizer's scalar settings)}. So ``load_model`` reads the model of a
training run, and a run resumes from the same file.

Written atomically (temporary file + rename), so a kill at any moment — or a disk that fills
while saving — leaves the previous checkpoint intact. Loading never unpickles anything and
refuses a file from another configuration with a clear message. Files of the previous training
format (``attnlab.training/1``: ``model/`` and ``optim/`` prefixes, the fields as separate
metadata entries) still load.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from attnlab.models.checkpoint import FORMAT, read_checkpoint, write_checkpoint
from attnlab.train.config import TrainConfig

__all__ = ["TrainingState", "load_training", "restore_optimizer", "save_training"]

PREVIOUS_FORMAT = "attnlab.training/1"
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


def save_training(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                  step: int, config: TrainConfig, tokenizer_json: str) -> Path:  # fmt: skip
    opt = optimizer.state_dict()
    tensors = {}
    for index, state in opt["state"].items():
        for key, value in state.items():
            value = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"optimizer/{index}/{key}"] = value.detach().contiguous()
    training = {"step": step, "config": config.to_dict(), "tokenizer": tokenizer_json,
                "param_groups": opt["param_groups"]}  # fmt: skip
    return write_checkpoint(path, model, extra_tensors=tensors,
                            extra_metadata={"training": json.dumps(training)})  # fmt: skip


def load_training(path: str | Path, expected: TrainConfig | None = None) -> TrainingState:
    checkpoint = read_checkpoint(path)
    meta = checkpoint.metadata
    if meta.get("format") == PREVIOUS_FORMAT:
        state = _previous_format(meta, checkpoint.tensors)
    elif meta.get("format") == FORMAT and "training" in meta:
        training = json.loads(meta["training"])
        optim = _optimizer_state(checkpoint.tensors, "optimizer/")
        state = TrainingState(
            training["step"], TrainConfig(**training["config"]), training["tokenizer"],
            checkpoint.model_state(), {"state": optim, "param_groups": training["param_groups"]},
        )  # fmt: skip
    else:
        raise ValueError(
            f"{path} is not an attnlab training checkpoint (format {meta.get('format')!r}"
            + (", a model without training state)" if "training" not in meta else ")")
        )
    if expected is not None:
        different = [
            f"{k}: checkpoint {getattr(state.config, k)!r}, requested {getattr(expected, k)!r}"
            for k in _MUST_MATCH
            if getattr(state.config, k) != getattr(expected, k)
        ]
        if different:
            raise ValueError(
                f"{path} was written by another configuration: " + "; ".join(different)
            )
    return state


def _previous_format(meta: dict[str, str], tensors: dict[str, torch.Tensor]) -> TrainingState:
    """attnlab.training/1: tensors ``model/<name>`` and ``optim/<index>/<key>``; metadata
    "step", "config", "tokenizer", "param_groups" as separate entries."""
    model_state = {k[len("model/") :]: v for k, v in tensors.items() if k.startswith("model/")}
    optim = _optimizer_state(tensors, "optim/")
    optimizer_state = {"state": optim, "param_groups": json.loads(meta["param_groups"])}
    config = TrainConfig(**json.loads(meta["config"]))
    return TrainingState(int(meta["step"]), config, meta["tokenizer"], model_state, optimizer_state)


def _optimizer_state(tensors: dict[str, torch.Tensor], prefix: str
                     ) -> dict[int, dict[str, torch.Tensor]]:  # fmt: skip
    """``{prefix}<param index>/<key>`` tensors → the optimizer's per-parameter state."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, tensor in tensors.items():
        if name.startswith(prefix):
            index, key = name[len(prefix) :].split("/", 1)
            state.setdefault(int(index), {})[key] = tensor
    return state


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
