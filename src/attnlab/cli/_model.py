"""The ``--model PATH`` option that `inspect`, `show` and `generate` share: any local model
folder (Hugging Face ``save_pretrained`` or attnlab checkpoint), loaded offline."""

from __future__ import annotations

import argparse

MODEL_HELP = (
    "a local model folder: one written by Hugging Face save_pretrained (config.json, "
    "safetensors weights, tokenizer files; offline, never unpickled) or an attnlab checkpoint "
    "folder (model.safetensors, tokenizer.json)"
)
TARGET_HELP = "encoder–decoder models: the decoder's text (default: its start token alone)"


def add_model(p: argparse.ArgumentParser, *, default: str | None = "all-MiniLM-L6-v2") -> None:
    """Add --model (and --target, the decoder side of an encoder–decoder model)."""
    shown = f" (default: the bundled {default})" if default else ""
    p.add_argument("--model", metavar="PATH", help=MODEL_HELP + shown)
    p.add_argument("--target", metavar="TEXT", help=TARGET_HELP)


def load(args: argparse.Namespace):  # -> (model, tokenizer) or (None, None) for the default
    from attnlab.inspection.pretrained import load_folder

    return load_folder(args.model) if args.model is not None else (None, None)


def check(args: argparse.Namespace, flag: str = "--model") -> None:
    """Before anything is loaded: --model (given as ``flag``) is a readable folder, --target a
    valid text."""
    from attnlab.cli import _checks

    if args.model is not None:
        _checks.input_dir(flag, args.model, what="model folder")
    _checks.text("--target", getattr(args, "target", None))
