"""`attnlab explain`: one attention computation of a real model, step by step, as a page."""

from __future__ import annotations

import argparse

from attnlab.cli import _checks, _model


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
    p.add_argument("text", help="the text to run (at most 64 tokens, and at most the model's "
                   "positions)")  # fmt: skip
    p.add_argument("-o", "--out", default="explain.html", help="output page (.html)")
    p.add_argument("--model", metavar="PATH", help="attnlab GPT checkpoint (folder with "
                   "tokenizer.json, or a language-model training run: RUN/checkpoint.safetensors "
                   "or RUN) or a BERT-family Hugging Face folder (default: the bundled "
                   "all-MiniLM-L6-v2)")  # fmt: skip
    p.add_argument("--layer", type=int, default=0, help="layer index (0-based; default 0)")
    p.add_argument("--head", type=int, default=0, help="head the page opens on (default 0)")
    choice = p.add_mutually_exclusive_group()
    choice.add_argument("--token", metavar="WORD", help="token the page opens on, by its text "
                        "(the word markers Ġ, ## and ▁ may be left out); a text found at several "
                        "positions is refused with them: then use --position (default: the last "
                        "token, before BERT's [SEP]; the first with --pitfall mask)")  # fmt: skip
    choice.add_argument("--position", type=int, metavar="N", help="token the page opens on, "
                        "by its 0-based position among the tokens")  # fmt: skip
    p.add_argument("--pitfall", choices=sorted(PITFALLS),
                   help="make this mistake on purpose: " + "; ".join(
                       f"{k}: {v}" for k, v in PITFALLS.items()))  # fmt: skip
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    _checks.text("TEXT", args.text)
    _checks.text("--token", args.token, blank=True)  # a character model's space or newline
    for flag in ("--layer", "--head", "--position"):
        _checks.number(flag, getattr(args, flag[2:]), at_least=0)
    _checks.output_file("-o", args.out, suffixes=(".html",))
    run = None if args.model is None else _model.check_path("--model", args.model)
    if run is not None and run.config.task == "lm":  # its alphabet, before the weights load
        run.tokens("TEXT", args.text)
    from attnlab.explain.build import build
    from attnlab.explain.load import load_explainable
    from attnlab.explain.pitfalls import check_pitfall

    if args.model is None:  # the default MiniLM is an encoder: refused before it loads
        check_pitfall(args.pitfall, False, flag=_flag, about="the default all-MiniLM-L6-v2")

    model, tokenizer, name = load_explainable(args.model, task=run and run.config.task)
    print(f"running {name} and walking layer {args.layer}…", flush=True)
    e = build(args.text, model=model, tokenizer=tokenizer, layer=args.layer, head=args.head,
              token=args.token, position=args.position, pitfall=args.pitfall, model_name=name,
              flag=_flag)  # fmt: skip
    path = e.save(args.out)
    print(f"the last card equals the model's hidden state for {e.tokens[e.start['token']]!r}: "
          f"max |difference| {e.max_difference:.1e}")  # fmt: skip
    print(f"wrote {path}")
    return 0


def _flag(name: str) -> str:
    """An argument's name on the command line, in explain's errors."""
    return name if name == "TEXT" else f"--{name}"
