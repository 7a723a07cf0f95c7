"""`attnlab explain`: one attention computation of a real model, step by step, as a page."""

from __future__ import annotations

import argparse

from attnlab.cli import _checks


def register(sub: argparse._SubParsersAction) -> None:
    from attnlab.explain.pitfalls import PITFALLS

    p = sub.add_parser(
        "explain",
        help="walk one attention computation of a real model step by step (interactive page)",
        description=(
            "Run TEXT through the bundled all-MiniLM-L6-v2 (or --model: an attnlab GPT checkpoint "
            "folder or training checkpoint file, or a BERT-family Hugging Face folder) and write "
            "one self-contained page (no network) that walks layer --layer's attention for "
            "--token and --head, one card a step: tokens → embeddings + positions → Q, K, V → "
            "q·k → 1/√d_k → mask → softmax → weighted sum of V → concatenated heads → W_O → "
            "residual and LayerNorm → feed-forward. Every number comes from the model's own "
            "weights; the last card equals the model's hidden state. Toggles remove the scaling "
            "or the causal mask; --pitfall opens the page with that mistake made, next to the "
            "correct numbers."
        ),
    )
    p.add_argument("text", help="the text to run (at most 64 tokens)")
    p.add_argument("-o", "--out", default="explain.html", help="output page (.html)")
    p.add_argument("--model", metavar="PATH", help="attnlab GPT checkpoint (folder with "
                   "tokenizer.json, or a training run's checkpoint.safetensors) or a BERT-family "
                   "Hugging Face folder (default: the bundled all-MiniLM-L6-v2)")  # fmt: skip
    p.add_argument("--layer", type=int, default=0, help="layer index (0-based; default 0)")
    p.add_argument("--head", type=int, default=0, help="head the page opens on (default 0)")
    p.add_argument("--token", metavar="WORD", help="token the page opens on, as the tokenizer "
                   "writes it (default: the last word)")  # fmt: skip
    p.add_argument("--pitfall", choices=sorted(PITFALLS),
                   help="make this mistake on purpose: " + "; ".join(
                       f"{k}: {v}" for k, v in PITFALLS.items()))  # fmt: skip
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    _checks.text("TEXT", args.text)
    _checks.text("--token", args.token)
    for flag in ("--layer", "--head"):
        _checks.number(flag, getattr(args, flag[2:]), at_least=0)
    _checks.output_file("-o", args.out, suffixes=(".html",))
    if args.model is not None:
        from pathlib import Path

        if Path(args.model).is_file():
            _checks.input_file("--model", args.model, what="checkpoint")
        else:
            _checks.input_dir("--model", args.model, what="model folder")
    if args.pitfall == "mask" and args.model is None:
        raise ValueError("--pitfall mask needs a causal model (--model PATH: an attnlab GPT "
                         "checkpoint); the default all-MiniLM-L6-v2 is an encoder, where every "
                         "token sees every other")  # fmt: skip
    from attnlab.explain import explain
    from attnlab.explain.load import load_explainable

    model, tokenizer, name = load_explainable(args.model)
    print(f"running {name} and walking layer {args.layer}…", flush=True)
    e = explain(args.text, model=model, tokenizer=tokenizer, layer=args.layer, head=args.head,
                token=args.token, pitfall=args.pitfall, model_name=name)  # fmt: skip
    path = e.save(args.out)
    print(f"the last card equals the model's hidden state for {e.tokens[e.start['token']]!r}: "
          f"max |difference| {e.max_difference:.1e}")  # fmt: skip
    print(f"wrote {path}")
    return 0
