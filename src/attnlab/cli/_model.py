"""The ``--model PATH`` option that `inspect`, `show`, `generate`, `serve` and `explain` share:
any local model folder (Hugging Face ``save_pretrained`` or attnlab checkpoint) or a training
run (its ``checkpoint.safetensors``, or the run folder holding it), loaded offline by
:func:`attnlab.inspection.pretrained.load_model_path`."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
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


@dataclass
class Run:
    """A training run given as a model path, known from its checkpoint's header before the
    weights are read: its name (as pages name it), configuration and tokenizer(s)
    (``(tok,)``, or ``(source, target)`` for translation)."""

    name: str
    config: object  # attnlab.train.config.TrainConfig
    tokenizers: tuple

    @property
    def translation(self) -> bool:
        return self.config.task == "translate"

    @property
    def limits(self) -> tuple[int, int]:
        """(the most tokens the model reads of a text — a translation's source —, the most
        decoder tokens, its start token included): :func:`attnlab.train.tasks.limits`."""
        from attnlab.train.tasks import limits

        return limits(self.config.task, self.config.context)

    def tokens(self, flag: str, text: str) -> int:
        """How many tokens the model reads of ``text`` (given as ``flag``; the source of a
        translation), refused naming ``flag`` if a character run's alphabet lacks some of its
        characters."""
        from attnlab.data.tokenizers import CharTokenizer

        tokenizer = self.tokenizers[0]
        if isinstance(tokenizer, CharTokenizer):
            unknown = tokenizer.unknown(text)
            if unknown:
                more = f" (and {len(unknown) - 10} more)" if len(unknown) > 10 else ""
                raise ValueError(f"{flag}: characters not in {self.name}'s alphabet: "
                                 f"{unknown[:10]!r}{more}")  # fmt: skip
        return len(tokenizer.encode(text))

    def target_tokens(self, target: str) -> int:
        """How many tokens a translation's decoder reads of ``target``, its start token
        included: counted by the function that builds the decoder's input."""
        from attnlab.inspection.report import target_ids
        from attnlab.inspection.run_tokenizers import hf_tokenizer

        face = hf_tokenizer(self.tokenizers[1])
        return len(target_ids(face, target, face.bos_token_id))

    def most_new_tokens(self, flag: str, n: int) -> int:
        """The most tokens generation can add to a text (given as ``flag``) of ``n`` tokens
        (:meth:`tokens`): the positions a GPT has left after it; a translation's
        :func:`~attnlab.train.tasks.target_limit` (after its <bos>)."""
        from attnlab.train.tasks import target_limit

        if self.translation:
            return target_limit(self.config.context)
        left = self.config.context - n
        if left < 1:
            raise ValueError(f"{flag} ({n} tokens) leaves none of the {self.config.context} "
                             f"positions of {self.name} to generate into")  # fmt: skip
        return left

    def check(
        self, texts: list[tuple[str, str | None]], *, target: str | None = None,
        new: tuple[str, int] | None = None, truncate: bool | None = None,
        counts: dict[str, int] | None = None,
    ) -> None:  # fmt: skip
        """Before the weights load: ``texts`` ((flag, text) pairs; None: not given) are written
        in the run's alphabet and fit its positions, as does ``target`` (--target) and
        ``new`` ((flag, N): N tokens generated after each text). ``truncate``: whether
        --truncate was given (None: the command has no such flag); ``counts``: the tokens of
        texts already counted by :meth:`tokens`, by flag (not counted again)."""
        from attnlab.train.tasks import target_limit

        context = self.config.context
        limit, decoder_limit = self.limits
        most = target_limit(context)
        if new is not None and self.translation and new[1] > most:
            raise ValueError(f"{new[0]} {new[1]}: {self.name} writes at most {most} "
                             "tokens")  # fmt: skip
        for flag, text in texts:
            if text is None:
                continue
            n = counts[flag] if counts and flag in counts else self.tokens(flag, text)
            what = "source tokens" if self.translation else "positions"
            if n > limit and not (truncate and new is None):
                keep = (
                    " (--truncate keeps the first ones)"
                    if truncate is False and new is None
                    else ""
                )
                raise ValueError(f"{flag} is {n} tokens; {self.name} reads at most {limit} "
                                 f"{what}{keep}")  # fmt: skip
            if new is None:
                continue
            new_flag, count = new
            if not self.translation and n + count > context:
                raise ValueError(f"{flag} ({n} tokens) + {new_flag} {count} > {context} positions "
                                 f"of {self.name} (at most {context - n} new tokens)")  # fmt: skip
        if target is not None and self.translation:
            m = self.target_tokens(target)
            if m > decoder_limit:
                raise ValueError(f"--target is {m} tokens with the start token; {self.name} "
                                 f"takes at most {decoder_limit}")  # fmt: skip


def check_path(flag: str, path: str) -> Run | None:  # None: a model folder, not a run
    """Before anything is loaded: ``path`` (given as ``flag``) is a readable model folder or
    training checkpoint, and a training run's header names a task attnlab knows (read without
    its tensors). Errors name the flag, what it expects and what it got."""
    from attnlab.cli import _checks
    from attnlab.inspection.pretrained import model_name
    from attnlab.inspection.runs import run_checkpoint
    from attnlab.train.checkpoint import read_run_header
    from attnlab.train.tasks import tokenizers_from_json

    if Path(path).is_file():
        _checks.input_file(flag, path, what="training checkpoint")
    else:
        _checks.input_dir(flag, path, what="model folder or training run")
    run = run_checkpoint(path)
    if run is None:
        return None
    try:
        header = read_run_header(run)
        tokenizers = tokenizers_from_json(header.config, header.tokenizer_json)
    except (ValueError, KeyError, TypeError, OSError) as err:
        raise ValueError(f"{flag}: {err}") from None
    return Run(model_name(path), header.config, tokenizers)


def check(args: argparse.Namespace, flag: str = "--model") -> Run | None:
    """Before anything is loaded: --model (given as ``flag``) is a model path
    (:func:`check_path`), --target a valid text. Returns the training run --model names."""
    from attnlab.cli import _checks

    _checks.text("--target", getattr(args, "target", None))
    return check_path(flag, args.model) if args.model is not None else None
