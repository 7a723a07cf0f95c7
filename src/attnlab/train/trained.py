"""A training run's model read back for use: the one loader behind ``attnlab generate
--checkpoint`` (:mod:`attnlab.train.text_generation`), translation scoring
(:mod:`attnlab.train.translation_eval`) and ``--model RUN`` in inspection
(:mod:`attnlab.inspection.runs`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

from attnlab.models.checkpoint import restore_model
from attnlab.train.checkpoint import load_training
from attnlab.train.config import TrainConfig
from attnlab.train.tasks import build_model_and_tokenizers

__all__ = ["Trained", "load_trained"]


@dataclass
class Trained:
    """A run's model in eval mode with its configuration and tokenizer(s): ``(tok,)`` for a
    language model, ``(source, target)`` for translation."""

    model: nn.Module
    config: TrainConfig
    tokenizers: tuple
    path: Path


def load_trained(path: str | Path) -> Trained:
    """The model of the training checkpoint at ``path``, built from its configuration and
    tokenizer(s) (no corpus is read), its weights restored, in eval mode."""
    state = load_training(path)
    model, tokenizers = build_model_and_tokenizers(state.config, state.tokenizer_json)
    restore_model(model, state.model_state, state.path)
    return Trained(model.eval(), state.config, tokenizers, state.path)
