"""Training runs as models to inspect: ``attnlab train`` writes ``RUN/checkpoint.safetensors``, one
file holding the weights and, in its training state, the configuration and tokenizer(s). A task
"lm" run is a GPT with its tokenizer; a "translate" run an EncoderDecoder with its source and
target tokenizers (:class:`SourceTarget`). Tokenizers get their Hugging Face face
(:mod:`attnlab.inspection.run_tokenizers`), so :func:`attnlab.inspect` and
:func:`attnlab.inspection.report.generate` run them like any model."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from torch import nn

__all__ = ["RUN_FILE", "SourceTarget", "load_run", "run_checkpoint", "sides"]

RUN_FILE = "checkpoint.safetensors"  # what `attnlab train` writes into its run folder


@dataclass
class SourceTarget:
    """A translation run's two tokenizers: ``source`` for the encoder's text, ``target`` for the
    decoder's. Called as a Hugging Face tokenizer is: ``text`` is tokenised by the source side,
    ``text_target`` by the target side."""

    source: object
    target: object

    def __call__(self, text=None, *, text_target=None, **kwargs):
        if (text is None) == (text_target is None):
            raise ValueError("give text (the source) or text_target (the target); one of them")
        if text is not None:
            return self.source(text, **kwargs)
        return self.target(text_target=text_target, **kwargs)


def sides(tokenizer) -> tuple[object, object]:
    """(source tokenizer, target tokenizer): the two of a :class:`SourceTarget`, else the same
    tokenizer for both sides."""
    if isinstance(tokenizer, SourceTarget):
        return tokenizer.source, tokenizer.target
    return tokenizer, tokenizer


def run_checkpoint(path: str | Path) -> Path | None:
    """The training checkpoint ``path`` names: a file itself, or the ``checkpoint.safetensors``
    of a run folder (one holding it and neither model.safetensors nor config.json); None for any
    other folder."""
    path = Path(path)
    if path.is_file():
        return path
    if (path / RUN_FILE).is_file() and not any(
        (path / name).exists() for name in ("model.safetensors", "config.json")
    ):
        return path / RUN_FILE
    return None


def faces(tokenizers: tuple) -> object:
    """The Hugging Face face of a run's tokenizers (``(tok,)`` or ``(source, target)``): one
    tokenizer, or a :class:`SourceTarget`."""
    from attnlab.inspection.run_tokenizers import hf_tokenizer

    shown = [hf_tokenizer(t) for t in tokenizers]
    return shown[0] if len(shown) == 1 else SourceTarget(*shown)


def load_run(path: str | Path) -> tuple[nn.Module, object]:
    """The model of a training run's checkpoint file in eval mode
    (:func:`attnlab.train.trained.load_trained`), and its tokenizer: a GPT and its tokenizer
    (task "lm"), or an EncoderDecoder and a :class:`SourceTarget` ("translate")."""
    from attnlab.train.trained import load_trained

    trained = load_trained(path)
    return trained.model, faces(trained.tokenizers)
