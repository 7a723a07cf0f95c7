"""`attnlab generate`: text from a trained GPT checkpoint, or a translation."""

from __future__ import annotations

import argparse

from attnlab.cli import _checks
from attnlab.train.text_generation import generate_text


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="sample text from a trained checkpoint (or translate with a translation model)",
        description="Load OUT_DIR/checkpoint.safetensors written by `attnlab train` and continue "
        "--prompt (language model; past the model's context the window slides, each token "
        "predicted from the last context − 1 tokens) or translate it (translation model).",
    )
    p.add_argument("--checkpoint", required=True, help="checkpoint.safetensors from attnlab train")
    p.add_argument("--prompt", default="\n", help="text to continue or translate")
    p.add_argument("--tokens", type=int, default=300, help="new tokens to generate")
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=None, help="sample from the k likeliest tokens")
    p.add_argument("--top-p", type=float, default=None,
                   help="sample from the smallest set of tokens with probability >= p")  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    _checks.input_file("--checkpoint", args.checkpoint, what="checkpoint")
    _checks.text("--prompt", args.prompt, blank=True)  # the default is a newline
    _checks.number("--tokens", args.tokens, at_least=1)
    _checks.number("--temperature", args.temperature, at_least=0.0)
    _checks.number("--top-k", args.top_k, at_least=1)
    _checks.number("--top-p", args.top_p, above=0.0, at_most=1.0)
    _checks.number("--seed", args.seed, at_least=0, at_most=2**64 - 1)
    print(generate_text(args.checkpoint, args.prompt, max_new_tokens=args.tokens,
                        temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                        seed=args.seed))  # fmt: skip
    return 0
