"""attnlab GPT vs Hugging Face GPT2LMHeadModel (attn_implementation="sdpa"), same configuration.

    python -m benchmarks.models            # 6 layers, 6 heads, d=384, context 256
    python -m benchmarks.models --quick    # a smoke run

Training: tokens/s of one AdamW step (forward, loss, backward, step) on a (B=8, T=256) batch.
Generation: tokens/s of greedy decoding, 256 new tokens from a 1-token prompt, batch 1:
attnlab with its KV cache, Hugging Face ``generate`` (with its cache), attnlab without cache.
Medians of interleaved repetitions; ratios are attnlab's tokens/s over the peer's.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")  # same for every contender; see attention.py

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from attnlab import GPT
from benchmarks.common import interleaved_medians, setup_threads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, one repetition")
    args = parser.parse_args()
    setup_threads()
    torch.manual_seed(0)
    layers, heads, d, ctx, vocab = (2, 2, 32, 32, 65) if args.quick else (6, 6, 384, 256, 65)
    batch, new_tokens, reps = (2, 16, 1) if args.quick else (8, 256, 5)
    config = GPT2Config(
        vocab_size=vocab, n_positions=ctx, n_embd=d, n_layer=layers, n_head=heads,
        resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0, bos_token_id=0, eos_token_id=0,
        attn_implementation="sdpa",
    )  # fmt: skip
    hf = GPT2LMHeadModel(config)
    assert hf.config._attn_implementation == "sdpa", hf.config._attn_implementation
    ours = GPT.from_hf(hf)
    ids = torch.randint(0, vocab, (batch, ctx))
    targets = torch.cat((ids[:, 1:], torch.full((batch, 1), -100)), 1)  # as HF shifts labels
    opt_hf = torch.optim.AdamW(hf.parameters(), lr=1e-4)
    opt_ours = torch.optim.AdamW(ours.parameters(), lr=1e-4)

    def step_hf() -> None:
        loss = hf(ids, labels=ids).loss
        loss.backward()
        opt_hf.step()
        opt_hf.zero_grad(set_to_none=True)

    def step_ours() -> None:
        loss = ours(ids, targets=targets).loss
        loss.backward()
        opt_ours.step()
        opt_ours.zero_grad(set_to_none=True)

    hf.train(), ours.train()
    t = interleaved_medians({"hf": step_hf, "attnlab": step_ours}, reps)
    tokens = batch * ctx
    print(f"GPT {layers} layers, {heads} heads, d={d}, context {ctx}, float32, 2 threads")
    print("| task | contender | tokens/s | ratio attnlab / peer |")
    print("|---|---|---|---|")
    peer = "Hugging Face GPT2LMHeadModel (sdpa)"
    print(f"| training step (B={batch}) | {peer} | {tokens / t['hf']:,.0f} | |")
    print(f"| training step (B={batch}) | attnlab GPT | {tokens / t['attnlab']:,.0f} | "
          f"{t['hf'] / t['attnlab']:.2f} |")  # fmt: skip

    hf.eval(), ours.eval()
    prompt = torch.randint(0, vocab, (1, 1))
    gen = {
        "hf": lambda: hf.generate(
            prompt,
            max_new_tokens=new_tokens - 1,
            min_new_tokens=new_tokens - 1,
            do_sample=False,
            pad_token_id=0,
        ),
        "attnlab": lambda: ours.generate(prompt, new_tokens - 1, temperature=0),
        "attnlab (no cache)": lambda: ours.generate(
            prompt, new_tokens - 1, temperature=0, use_cache=False
        ),
    }
    with torch.inference_mode():
        g = interleaved_medians(gen, max(1, reps - 2))
    n = new_tokens - 1
    for name, secs in g.items():
        ratio = "" if name == "hf" else f"{g['hf'] / secs:.2f} vs HF"
        if name == "attnlab":
            ratio += f", {g['attnlab (no cache)'] / secs:.2f} vs no cache"
        label = "Hugging Face generate" if name == "hf" else name
        print(f"| greedy generation, {n} tokens | {label} | {n / secs:,.0f} | {ratio} |")


if __name__ == "__main__":
    main()
