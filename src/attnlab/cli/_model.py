"""The ``--model PATH`` option that `inspect`, `show`, `generate`, `serve` and `explain` share:
any local model folder (Hugging Face ``save_pretrained`` or attnlab checkpoint) or a training
run (its ``checkpoint.safetensors``, or the run folder holding it), loaded offline by
:func:`attnlab.inspection.pretrained.load_model_path`."""

from __future__ import annotations

import argparse
from pathlib import Path

MODEL_HELP = (
    "a training run of attnlab train (RUN/checkpoint.safetensors, or the folder RUN) or a local "
    "model folder: one written by Hugging Face save_pretrained (config.json, safetensors "
    "weights, tokenizer files; offline, never unpickled) or an attnlab checkpoint folder "
    "(model.safetensors, tokenizer.json)"
)
TARGET_HELP = "encoder–decoder models: the decoder's text (default: its start token alone)"


def add_model(p: argparse.ArgumentParser, *, default: str | None = "all-MiniLM-L6-v2") -> None:
    """Add --model (and --target, the decoder side of an encoder–decoder model)."""
    shown = f" (default: the bundled {default})" if default else ""
    p.add_argument("--model", metavar="PATH", help=MODEL_HELP + shown)
    p.add_argument("--target", metavar="TEXT", help=TARGET_HELP)


def load(args: argparse.Namespace):  # -> (model, tokenizer) or (None, None) for the default
    from attnlab.inspection.pretrained import load_model_path

    return load_model_path(args.model) if args.model is not None else (None, None)


def check_path(flag: str, path: str):  # -> the TrainConfig of a training run, else None
    """Before anything is loaded: ``path`` (given as ``flag``) is a readable model folder or
    training checkpoint, and a training run's header names a task attnlab knows (read without
    its tensors). Errors name the flag, what it expects and what it got."""
    from attnlab.cli import _checks
    from attnlab.inspection.runs import run_checkpoint, run_config

    if Path(path).is_file():
        _checks.input_file(flag, path, what="training checkpoint")
    else:
        _checks.input_dir(flag, path, what="model folder or training run")
    run = run_checkpoint(path)
    if run is None:
        return None
    try:
        return run_config(run)
    except (ValueError, OSError) as err:
        raise ValueError(f"{flag}: {err}") from None


def check(args: argparse.Namespace, flag: str = "--model") -> None:
    """Before anything is loaded: --model (given as ``flag``) is a model path
    (:func:`check_path`), --target a valid text."""
    from attnlab.cli import _checks

    if args.model is not None:
        check_path(flag, args.model)
    _checks.text("--target", getattr(args, "target", None))
