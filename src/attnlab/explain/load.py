"""The models ``attnlab explain --model PATH`` takes, loaded offline: the bundled MiniLM (no
PATH), an attnlab GPT checkpoint (a folder from ``save_model`` with its ``tokenizer.json``, or a
language-model training run: its ``checkpoint.safetensors`` or its folder, loaded by the shared
:func:`attnlab.inspection.pretrained.load_model_path`) or a BERT-family Hugging Face folder.
Anything else is refused by name before its weights are read."""

from __future__ import annotations

import json
from pathlib import Path

from torch import nn

from attnlab.explain.anatomy import SUPPORTED

__all__ = ["load_explainable"]


def load_explainable(path: str | Path | None, *, task: str | None = None
                     ) -> tuple[nn.Module, object, str]:  # fmt: skip
    """(model in eval mode, tokenizer, the name the page shows). ``task``: a training run's
    task, when the caller has read its header already (else it is read here)."""
    from attnlab.inspection.pretrained import load_minilm, load_model_path, model_name
    from attnlab.inspection.runs import run_checkpoint
    from attnlab.train.checkpoint import read_run_header

    if path is None:
        model, tokenizer = load_minilm()
        return model, tokenizer, "all-MiniLM-L6-v2"
    path = Path(path)
    run = run_checkpoint(path)
    if run is not None:
        if task is None:  # the header alone: refused before the weights are read
            task = read_run_header(run).config.task
        if task != "lm":
            raise ValueError(f"--model {path} is a {task!r} training run; explain supports "
                             f"{SUPPORTED}")  # fmt: skip
    else:
        _refuse_unsupported_folder(path)
    model, tokenizer = load_model_path(path)
    return model, tokenizer, model_name(path)


def _refuse_unsupported_folder(folder: Path) -> None:
    """A Hugging Face folder whose config names another architecture is refused from its
    config.json alone (attnlab checkpoints are checked once built)."""
    config = folder / "config.json"
    if not config.is_file():
        return  # an attnlab/2 checkpoint, or an incomplete folder load_folder names
    try:
        data = json.loads(config.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError):
        return
    if not isinstance(data, dict) or "architecture" in data:  # attnlab/1 checkpoint
        return
    kind = data.get("model_type")
    if kind != "bert":
        raise ValueError(f"--model {folder} holds a {kind!r} model; explain supports {SUPPORTED}")
