"""`attnlab generate`: text from a trained GPT checkpoint, or a translation."""

from __future__ import annotations

import argparse

import torch

from attnlab.train.checkpoint import load_training, restore_model
from attnlab.train.tasks import build_model_and_tokenizers


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "generate",
        help="sample text from a trained checkpoint (or translate with a translation model)",
        description="Load OUT_DIR/checkpoint.safetensors written by `attnlab train` and continue "
        "--prompt (language model) or translate it (translation model).",
    )
    p.add_argument("--checkpoint", required=True, help="checkpoint.safetensors from attnlab train")
    p.add_argument("--prompt", default="\n", help="text to continue or translate")
    p.add_argument("--tokens", type=int, default=300, help="new tokens to generate")
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--top-k", type=int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    state = load_training(args.checkpoint)
    model, tokenizers = build_model_and_tokenizers(state.config, state.tokenizer_json)
    restore_model(model, state.model_state)
    model.eval()
    if state.config.task == "lm":
        (tok,) = tokenizers
        ids = torch.tensor([tok.encode(args.prompt)])
        room = model.config.max_len - ids.shape[1]
        if room <= 0:
            raise ValueError(f"prompt is {ids.shape[1]} tokens; the model's context is "
                             f"{model.config.max_len}")  # fmt: skip
        g = torch.Generator().manual_seed(args.seed)
        out = _generate_long(model, ids, args.tokens, args.temperature, args.top_k, g)
        print(tok.decode(out[0].tolist()))
    else:
        src_tok, tgt_tok = tokenizers
        src = torch.tensor([src_tok.encode(args.prompt)[: state.config.context - 1]])
        out = model.generate(src, state.config.context - 1, tgt_tok.bos_id, tgt_tok.eos_id)
        print(tgt_tok.decode(out[0].tolist()))
    return 0


@torch.no_grad()
def _generate_long(model, ids, n, temperature, top_k, g):  # type: ignore[no-untyped-def]
    """Generate n tokens, sliding the context window when the text outgrows max_len."""
    window = model.config.max_len
    while n > 0:
        context = ids[:, -(window // 2) :] if ids.shape[1] >= window else ids
        step = min(n, window - context.shape[1])
        out = model.generate(context, step, temperature=temperature, top_k=top_k, generator=g)
        ids = torch.cat((ids, out[:, context.shape[1] :]), dim=1)
        n -= step
    return ids
