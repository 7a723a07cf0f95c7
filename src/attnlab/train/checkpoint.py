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

import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from attnlab.models.checkpoint import (
    FORMAT,
    Checkpoint,
    read_checkpoint,
    write_checkpoint,
    written_by,
)
from attnlab.train.config import TrainConfig

__all__ = [
    "RunHeader",
    "TrainingState",
    "check_resumable",
    "load_training",
    "read_run_header",
    "restore_optimizer",
    "save_training",
]

PREVIOUS_FORMAT = "attnlab.training/1"
_FIELDS = ("step", "config", "tokenizer", "param_groups")  # of the "training" metadata entry
# Config fields that change the model's shape or the data: a checkpoint only resumes under them.
# The corpus is compared apart: by content (sha256) and, in files without it, by resolved path.
_MUST_MATCH = ("task", "tokenizer", "bpe_vocab", "max_words", "n_layers", "n_heads", "d_model",
               "d_ff", "context", "seed", "val_fraction", "activation", "dtype")  # fmt: skip


def _added_fields(data: dict) -> dict:
    """Fields added later, with the values the runs written before them used."""
    before = "gelu_tanh" if data.get("task", "lm") == "lm" else "relu"  # GPT's, the Transformer's
    return {"activation": before, "dtype": "float32"}


_BUILT_IN_CORPORA = ("shakespeare", "bible-en-es")


@dataclass
class TrainingState:
    step: int  # optimiser steps completed
    config: TrainConfig
    tokenizer_json: str
    model_state: dict[str, torch.Tensor]
    optimizer_state: dict[str, Any] | None
    corpus_sha256: str | None = None  # of the training text (absent in older files)
    path: Path = Path("checkpoint")  # where it was read from, for messages


def save_training(path: str | Path, model: nn.Module, optimizer: torch.optim.Optimizer,
                  step: int, config: TrainConfig, tokenizer_json: str, *,
                  corpus_sha256: str | None = None) -> Path:  # fmt: skip
    opt = optimizer.state_dict()
    tensors = {}
    for index, state in opt["state"].items():
        for key, value in state.items():
            value = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"optimizer/{index}/{key}"] = value.detach().contiguous()
    training = {"step": step, "config": config.to_dict(), "tokenizer": tokenizer_json,
                "param_groups": opt["param_groups"], "corpus_sha256": corpus_sha256}  # fmt: skip
    return write_checkpoint(path, model, extra_tensors=tensors,
                            extra_metadata={"training": json.dumps(training)})  # fmt: skip


def load_training(path: str | Path, expected: TrainConfig | None = None) -> TrainingState:
    """The training state in ``path``; with ``expected``, refuse a file written by a run that
    ``expected`` cannot continue (:func:`check_resumable`)."""
    path = Path(path)
    checkpoint = read_checkpoint(path)
    training = _training_entry(checkpoint, path)
    step = training["step"]
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        raise ValueError(f"{path}: step must be an integer >= 0; got {step!r}")
    previous = checkpoint.metadata.get("format") == PREVIOUS_FORMAT
    if previous:  # tensors model/<name> and optim/<index>/<key>
        model_state = {k[len("model/") :]: v for k, v in checkpoint.tensors.items()
                       if k.startswith("model/")}  # fmt: skip
    else:
        model_state = checkpoint.model_state()
    optim = _optimizer_state(checkpoint.tensors, "optim/" if previous else "optimizer/")
    state = TrainingState(
        step, _config(training["config"], path, checkpoint.metadata), training["tokenizer"],
        model_state, {"state": optim, "param_groups": training["param_groups"]},
        training.get("corpus_sha256"), path,
    )  # fmt: skip
    if expected is not None:
        check_resumable(state, expected)
    return state


@dataclass(frozen=True)
class RunHeader:
    """What a training checkpoint's header says about its run, read without a tensor: what a
    caller checks (the task, text lengths against the context, characters against the
    alphabet) before the weights are loaded."""

    path: Path
    config: TrainConfig
    tokenizer_json: str  # the run's tokenizer, or {"src", "tgt"} for translation


def read_run_header(path: str | Path) -> RunHeader:
    """The configuration and tokenizer JSON of the run that wrote ``path``, from the file's
    header alone (no tensor is read)."""
    path = Path(path)
    checkpoint = read_checkpoint(path, tensors=False)
    training = _training_entry(checkpoint, path)
    tokenizer = training["tokenizer"]
    if not isinstance(tokenizer, str):
        raise ValueError(f"{path}: the training tokenizer must be a JSON text; got "
                         f"{type(tokenizer).__name__}")  # fmt: skip
    return RunHeader(path, _config(training["config"], path, checkpoint.metadata), tokenizer)


def _training_entry(checkpoint: Checkpoint, path: Path) -> dict[str, Any]:
    """The training fields: the "training" JSON entry, or (attnlab.training/1) the separate
    metadata entries "step", "config", "tokenizer", "param_groups"."""
    meta = checkpoint.metadata
    if meta.get("format") == FORMAT and "training" in meta:
        training = checkpoint.json_entry("training", path)
    elif meta.get("format") == PREVIOUS_FORMAT:
        training = {k: meta[k] for k in _FIELDS if k in meta}
        try:
            training.update({k: json.loads(training[k]) for k in ("step", "config", "param_groups")
                             if k in training})  # fmt: skip
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: training metadata is not JSON ({err})") from None
    else:
        raise ValueError(
            f"{path} is not an attnlab training checkpoint (format {meta.get('format')!r}"
            + (", a model without training state)" if "training" not in meta else ")")
        )
    missing = [k for k in _FIELDS if k not in training]
    if missing:
        raise ValueError(f"{path}: the training metadata lacks {missing}{written_by(meta)}")
    return training


def _config(data: object, path: Path, meta: dict[str, str]) -> TrainConfig:
    """The TrainConfig recorded in a checkpoint; unknown fields (another attnlab version) and
    invalid values are errors naming the field."""
    if not isinstance(data, dict):
        raise ValueError(f"{path}: the training config must be a JSON object; got {data!r}")
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ValueError(f"{path}: unknown training config field(s) {unknown}{written_by(meta)}")
    data = {**_added_fields(data), **data}
    try:
        return TrainConfig(**data)
    except ValueError as err:
        raise ValueError(f"{path}: training config: {err}") from None


def same_corpus(state: TrainingState, config: TrainConfig, sha256: str | None) -> str | None:
    """Why ``config``'s corpus (text hashing to ``sha256``, if known) is not the checkpoint's,
    or None if it is: equal content hashes, or (a file without one) the same resolved path."""
    stored, given = state.config.corpus, config.corpus
    if state.corpus_sha256 is not None and sha256 is not None:
        if state.corpus_sha256 == sha256:
            return None
        return (f"corpus: checkpoint trained on {stored!r} (sha256 {state.corpus_sha256[:12]}), "
                f"requested {given!r} holds other text (sha256 {sha256[:12]})")  # fmt: skip

    def resolved(name: str) -> str:
        return name if name in _BUILT_IN_CORPORA else str(Path(name).resolve())

    if resolved(stored) == resolved(given):
        return None
    return f"corpus: checkpoint {resolved(stored)!r}, requested {resolved(given)!r}"


def check_resumable(state: TrainingState, config: TrainConfig, sha256: str | None = None
                    ) -> None:  # fmt: skip
    """Refuse to continue ``state`` under ``config`` if they differ in a field that changes
    the model or the data (the corpus by content, when ``sha256`` is given), naming each."""
    different = [
        f"{k}: checkpoint {getattr(state.config, k)!r}, requested {getattr(config, k)!r}"
        for k in _MUST_MATCH
        if getattr(state.config, k) != getattr(config, k)
    ]
    corpus = same_corpus(state, config, sha256)
    different += [corpus] if corpus else []
    if different:
        raise ValueError(
            f"{state.path} was written by another configuration: " + "; ".join(different)
        )


def _optimizer_state(tensors: dict[str, torch.Tensor], prefix: str
                     ) -> dict[int, dict[str, torch.Tensor]]:  # fmt: skip
    """``{prefix}<param index>/<key>`` tensors → the optimizer's per-parameter state."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, tensor in tensors.items():
        if name.startswith(prefix):
            index, key = name[len(prefix) :].split("/", 1)
            state.setdefault(int(index), {})[key] = tensor
    return state


def restore_optimizer(optimizer: torch.optim.Optimizer, state: dict[str, Any],
                      source: str | Path = "checkpoint") -> None:  # fmt: skip
    """Load optimizer state saved by :func:`save_training`, each per-parameter tensor laid out
    in memory as its parameter is. Saved state is contiguous; a parameter stored (in, out)
    (:func:`attnlab.functional.linear.transposed_layout`) is not, and PyTorch's fused AdamW
    reads state and parameter as if their strides matched. A tensor whose shape is not its
    parameter's is an error naming both."""
    params = [p for group in optimizer.param_groups for p in group["params"]]
    for index, tensors in state["state"].items():
        for key, t in tensors.items():
            if index >= len(params):
                raise ValueError(f"{source}: optimizer/{index}/{key} is for parameter {index}; "
                                 f"the model has {len(params)}")  # fmt: skip
            if t.dim() and tuple(t.shape) != tuple(params[index].shape):
                raise ValueError(f"{source}: optimizer/{index}/{key} has shape {tuple(t.shape)}, "
                                 f"its parameter {tuple(params[index].shape)}")  # fmt: skip
    optimizer.load_state_dict(state)
    for p in params:
        for key, t in optimizer.state.get(p, {}).items():
            if torch.is_tensor(t) and t.shape == p.shape and t.stride() != p.stride():
                optimizer.state[p][key] = torch.empty_like(p, dtype=t.dtype).copy_(t)
