"""The models ``attnlab explain --model PATH`` takes, loaded offline: the bundled MiniLM (no
PATH), an attnlab GPT checkpoint (a folder from ``save_model`` with its ``tokenizer.json``, or a
training run's ``checkpoint.safetensors``) or a BERT-family Hugging Face folder. Anything else
is refused by name before its weights are read."""

from __future__ import annotations

import json
from pathlib import Path

from torch import nn

from attnlab.explain.anatomy import SUPPORTED

__all__ = ["load_explainable"]


def load_explainable(path: str | Path | None) -> tuple[nn.Module, object, str]:
    """(model in eval mode, tokenizer, the name the page shows)."""
    if path is None:
        from attnlab.inspection.pretrained import load_minilm

        model, tokenizer = load_minilm()
        return model, tokenizer, "all-MiniLM-L6-v2"
    path = Path(path)
    if path.is_file():
        return (*_training_checkpoint(path), path.parent.name or path.name)
    _refuse_unsupported_folder(path)
    from attnlab.inspection.pretrained import load_folder

    model, tokenizer = load_folder(path)
    return model, tokenizer, path.name


def _training_checkpoint(path: Path) -> tuple[nn.Module, object]:
    from attnlab.models.checkpoint import restore_model
    from attnlab.train.checkpoint import load_training
    from attnlab.train.tasks import build_model_and_tokenizers

    state = load_training(path)
    if state.config.task != "lm":
        raise ValueError(f"--model {path} is a {state.config.task!r} training run; explain "
                         f"supports {SUPPORTED}")  # fmt: skip
    model, (tokenizer,) = build_model_and_tokenizers(state.config, state.tokenizer_json)
    restore_model(model, state.model_state, state.path)
    return model.eval(), tokenizer


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
