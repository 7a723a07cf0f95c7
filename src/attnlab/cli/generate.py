"""`attnlab generate`: text from a trained GPT checkpoint, or a translation."""

from __future__ import annotations

import argparse

from attnlab.cli import _checks, _model
from attnlab.train.tasks import DEFAULT_NEW_TOKENS, target_limit
from attnlab.train.text_generation import generate_text


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="sample text from a trained checkpoint (or translate with a translation model); "
        "with --model, show what each new token attended to",
        description="Load OUT_DIR/checkpoint.safetensors written by `attnlab train` and continue "
        "--prompt (language model; past the model's context the window slides, each token "
        "predicted from the last context − 1 tokens) or translate it (translation model). "
        "With --model PATH (a training run's checkpoint or folder, or a local model folder), "
        "generate greedily under attention "
        "capture (KV cache) and print, for each new token, the --top tokens that the query "
        "predicting it weighed most (mean over heads, at --layer or over all layers): prompt "
        "and generated tokens for a decoder LM, source tokens (cross-attention) for an "
        "encoder–decoder.",
    )
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoint", help="checkpoint.safetensors from attnlab train")
    source.add_argument(
        "--model", metavar="PATH",
        help="show what each new token attended to, generating greedily with: a training run "
        "of attnlab train (RUN/checkpoint.safetensors or RUN: a GPT, or a translation model), "
        "a Hugging Face save_pretrained folder (a decoder LM or an encoder–decoder) or an "
        "attnlab GPT checkpoint folder with its tokenizer.json",
    )  # fmt: skip
    p.add_argument("--prompt", default="\n", help="text to continue or translate")
    p.add_argument("--tokens", type=int, help="new tokens to generate (default: a language "
                   "model's 300 with --checkpoint, sliding; with --model, the positions it has "
                   "left after --prompt, at most 300; a translation: up to context − 1, its "
                   "most)")  # fmt: skip
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=None, help="sample from the k likeliest tokens")
    p.add_argument("--top-p", type=float, default=None,
                   help="sample from the smallest set of tokens with probability >= p")  # fmt: skip
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--layer", type=int, help="with --model: this layer (default: mean of all)")
    p.add_argument("--top", type=int, default=3, help="with --model: tokens shown per step")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    _checks.text("--prompt", args.prompt, blank=True)  # the default is a newline
    _checks.number("--tokens", args.tokens, at_least=1)
    if args.model is not None:
        return show_attention(args)
    _checks.input_file("--checkpoint", args.checkpoint, what="checkpoint")
    _checks.number("--temperature", args.temperature, at_least=0.0)
    _checks.number("--top-k", args.top_k, at_least=1)
    _checks.number("--top-p", args.top_p, above=0.0, at_most=1.0)
    _checks.number("--seed", args.seed, at_least=0, at_most=2**64 - 1)
    run = _model.check_path("--checkpoint", args.checkpoint)
    if run is not None and run.translation:  # as --model translates: a source to cut is refused
        new = None if args.tokens is None else ("--tokens", args.tokens)
        run.check([("--prompt", args.prompt)], new=new)
    print(generate_text(args.checkpoint, args.prompt, max_new_tokens=args.tokens,
                        temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                        seed=args.seed))  # fmt: skip
    return 0


def show_attention(args: argparse.Namespace) -> int:
    """Generate with --model under capture; per new token, what its predicting query weighed.
    Capture needs one sequence the model reads whole (a KV cache), so --model never slides the
    window as --checkpoint does: a training run's lengths are checked before it loads, and
    --tokens defaults to the positions left."""
    from attnlab.inspection.report import generate
    from attnlab.viz.tokens import shown

    _checks.number("--top", args.top, at_least=1)
    run = _model.check(args)
    tokens = args.tokens
    if run is not None:
        counts = {"--prompt": run.tokens("--prompt", args.prompt)}  # counted once
        if tokens is None:
            tokens = min(DEFAULT_NEW_TOKENS, run.most_new_tokens("--prompt", counts["--prompt"]))
        run.check([("--prompt", args.prompt)], new=("--tokens", tokens), counts=counts)
    model, tokenizer = _model.load(args)
    if tokens is None:
        tokens = _tokens_left(model, tokenizer, args.prompt)
    report = generate(args.prompt, model=model, tokenizer=tokenizer, max_new_tokens=tokens)
    steps = report.generation_steps(layer=args.layer, top=args.top)
    where = "all layers" if args.layer is None else f"layer {args.layer}"
    keys = "source tokens" if report.target_tokens is not None else "prompt and generated tokens"
    # An encoder–decoder's report has the translation; a decoder LM's new tokens are joined.
    text = report.target if report.target is not None else (
        tokenizer.convert_tokens_to_string(report.generated))  # fmt: skip
    print(f"{report.model_name}: {args.prompt!r} → {text!r}")
    print(f"what each new token was predicted from ({keys}; mean over heads, {where}):")
    for n, (token, top) in enumerate(steps):
        weighed = "  ".join(f"{shown(key, byte_level=report.byte_level)} {weight:.2f}"
                            for key, _, weight in top)  # fmt: skip
        print(f"  {n:>3} {shown(token, byte_level=report.byte_level):>8} ← {weighed}")
    return 0


def _tokens_left(model, tokenizer, prompt: str) -> int:
    """--tokens' default for a model folder: DEFAULT_NEW_TOKENS (300), or fewer if the model's
    positions end sooner (an encoder–decoder's after its start token)."""
    from attnlab.inspection.report import is_encoder_decoder, position_limits
    from attnlab.inspection.runs import sides

    _, limit = position_limits(model)
    if limit is None:
        return DEFAULT_NEW_TOKENS
    if is_encoder_decoder(model):
        return max(1, min(DEFAULT_NEW_TOKENS, target_limit(limit)))
    used = len(sides(tokenizer)[0](prompt)["input_ids"])
    return max(1, min(DEFAULT_NEW_TOKENS, limit - used))
