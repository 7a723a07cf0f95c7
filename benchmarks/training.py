"""Training speed at the ``shakespeare-char`` preset's shape: attnlab vs the GPTs people train.

    python -m benchmarks.training            # 4 layers, 4 heads, d=192, context 128, batch 32
    python -m benchmarks.training --quick    # a smoke run (tiny model, one repetition)
    python -m benchmarks.training --parts    # attention blocks and dropout masks, one thread

Contenders, same shape (d_ff = 4·d), dropout 0.1, vocabulary 81, AdamW (lr 1e-3, weight decay
0.1, PyTorch's default implementation for CPU tensors), gradient clipping at 1.0, one fixed
batch of random token ids (data loading is timed separately for attnlab's own sampler):

* ``attnlab`` float32 and ``attnlab bf16`` (``autocast`` to bfloat16 with float32 master
  weights, what ``attnlab train --dtype bfloat16`` runs);
* ``plain PyTorch GPT``: the minimal GPT that tutorials and nanoGPT-style scripts write (one
  fused QKV linear, ``F.scaled_dot_product_attention(is_causal=True)``, GELU MLP, pre-norm,
  tied embeddings, exact GELU), written here; attnlab's preset GPT also uses exact GELU;
* ``x-transformers``: ``TransformerWrapper`` with a ``Decoder`` of the same depth, width,
  heads and context (PyPI x-transformers);
* ``Hugging Face GPT2LMHeadModel`` with ``attn_implementation="sdpa"``.

A step is forward, loss, backward, clipping, optimizer step. Contenders run in turn within
each repetition (interleaved), 2 threads; tokens/s from the median step time; ratios are
attnlab's over the fastest peer's.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")  # same for every contender; see attention.py

import contextlib
import statistics
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from benchmarks.common import interleaved_times, paired_ratio, paired_ratios, setup_threads


@dataclass(frozen=True)
class Shape:
    layers: int
    heads: int
    d: int
    context: int
    batch: int
    vocab: int = 81
    dropout: float = 0.1


PRESET = Shape(layers=4, heads=4, d=192, context=128, batch=32)
QUICK = Shape(layers=2, heads=2, d=32, context=16, batch=4)


class _PlainBlock(nn.Module):
    def __init__(self, s: Shape) -> None:
        super().__init__()
        self.s = s
        self.ln1, self.ln2 = nn.LayerNorm(s.d), nn.LayerNorm(s.d)
        self.qkv, self.proj = nn.Linear(s.d, 3 * s.d), nn.Linear(s.d, s.d)
        self.up, self.down = nn.Linear(s.d, 4 * s.d), nn.Linear(4 * s.d, s.d)
        self.drop = nn.Dropout(s.dropout)

    def forward(self, x: Tensor) -> Tensor:  # (B, T, D) → (B, T, D)
        B, T, D = x.shape
        H = self.s.heads
        q, k, v = self.qkv(self.ln1(x)).split(D, dim=2)
        q, k, v = (t.view(B, T, H, D // H).transpose(1, 2) for t in (q, k, v))  # (B, H, T, d)
        p = self.s.dropout if self.training else 0.0
        y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        x = x + self.drop(self.proj(y.transpose(1, 2).reshape(B, T, D)))
        return x + self.drop(self.down(F.gelu(self.up(self.ln2(x)))))


class PlainGPT(nn.Module):
    """The minimal GPT of tutorials and nanoGPT-style training scripts, in plain PyTorch."""

    def __init__(self, s: Shape) -> None:
        super().__init__()
        self.tokens, self.positions = nn.Embedding(s.vocab, s.d), nn.Embedding(s.context, s.d)
        self.drop = nn.Dropout(s.dropout)
        self.blocks = nn.ModuleList(_PlainBlock(s) for _ in range(s.layers))
        self.norm = nn.LayerNorm(s.d)
        self.head = nn.Linear(s.d, s.vocab, bias=False)
        self.head.weight = self.tokens.weight
        for module in self.modules():
            if isinstance(module, nn.Linear | nn.Embedding):
                nn.init.normal_(module.weight, std=0.02)

    def forward(self, ids: Tensor) -> Tensor:  # (B, T) → logits (B, T, V)
        x = self.drop(self.tokens(ids) + self.positions(torch.arange(ids.shape[1])))
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x))


def contenders(s: Shape) -> dict[str, tuple[nn.Module, Callable[[Tensor, Tensor], Tensor]]]:
    """name → (model, loss(ids, targets)); every model in training mode, seeded alike."""
    from transformers import GPT2Config, GPT2LMHeadModel
    from x_transformers import Decoder, TransformerWrapper

    from attnlab.models.config import GPTConfig
    from attnlab.models.gpt import GPT

    def logits_loss(get: Callable[[Tensor], Tensor]):
        return lambda ids, targets: F.cross_entropy(get(ids).flatten(0, 1), targets.flatten())

    torch.manual_seed(0)
    config = GPTConfig(vocab_size=s.vocab, max_len=s.context, n_layers=s.layers,
                       n_heads=s.heads, d_model=s.d, d_ff=4 * s.d, dropout=s.dropout,
                       activation="gelu")  # fmt: skip
    ours = GPT(config)
    torch.manual_seed(0)
    ours_bf16 = GPT(config)
    torch.manual_seed(0)
    plain = PlainGPT(s)
    torch.manual_seed(0)
    xt = TransformerWrapper(
        num_tokens=s.vocab, max_seq_len=s.context, emb_dropout=s.dropout,
        attn_layers=Decoder(dim=s.d, depth=s.layers, heads=s.heads, attn_dropout=s.dropout,
                            ff_dropout=s.dropout),
    )  # fmt: skip
    torch.manual_seed(0)
    hf = GPT2LMHeadModel(GPT2Config(
        vocab_size=s.vocab, n_positions=s.context, n_embd=s.d, n_layer=s.layers, n_head=s.heads,
        resid_pdrop=s.dropout, embd_pdrop=s.dropout, attn_pdrop=s.dropout, bos_token_id=0,
        eos_token_id=0, attn_implementation="sdpa",
    ))  # fmt: skip
    return {
        "attnlab": (ours, lambda ids, targets: ours(ids, targets=targets).loss),
        "attnlab bf16": (ours_bf16, lambda ids, targets: ours_bf16(ids, targets=targets).loss),
        "plain PyTorch GPT": (plain, logits_loss(plain)),
        "x-transformers": (xt, logits_loss(xt)),
        "Hugging Face GPT-2 (sdpa)": (hf, logits_loss(lambda ids: hf(ids).logits)),
    }


def step_function(model: nn.Module, loss_of: Callable[[Tensor, Tensor], Tensor], ids: Tensor,
                  targets: Tensor, dtype: torch.dtype) -> Callable[[], None]:  # fmt: skip
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.1)

    def step() -> None:
        cast = (torch.autocast("cpu", dtype=dtype) if dtype != torch.float32
                else contextlib.nullcontext())  # fmt: skip
        with cast:
            loss = loss_of(ids, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def _attention_step(rows: int | None, inputs: tuple[Tensor, ...], grad: Tensor, p: float
                    ) -> Callable[[], None]:  # fmt: skip
    """Forward + backward of causal attention on fresh leaves of ``inputs``: attnlab's explicit
    route by blocks of ``rows`` query rows, or (``rows`` None) PyTorch's kernel."""
    import attnlab.functional.portable as portable

    def run() -> None:
        leaves = [t.detach().requires_grad_() for t in inputs]
        if rows is None:
            out = F.scaled_dot_product_attention(*leaves, is_causal=True)
        else:
            portable._CAUSAL_ROWS = rows
            out = portable._explicit(*leaves, None, True, 48**-0.5, p)
        out.backward(grad)

    return run


def parts(reps: int) -> None:
    """On one thread: forward + backward of causal attention on (32, 4, T, 48), the whole square
    (one block) against blocks of 64 query rows, with dropout 0.1, and without it also
    PyTorch's kernel (``F.scaled_dot_product_attention``); and dropout of (32, 128, 192) with a
    bool mask + ``where`` against the comparison written into float32."""
    import attnlab.functional.portable as portable
    from attnlab.functional.dropout import dropout as dropout_fn
    from attnlab.functional.dropout import dropout_scale, keep_mask

    torch.set_num_threads(1)
    print("| case | PyTorch's kernel | whole square | blocks of 64 |")
    print("|---|---|---|---|")
    cases = ((torch.float32, 128, 0.1), (torch.bfloat16, 128, 0.1), (torch.float32, 512, 0.1),
             (torch.float32, 128, 0.0), (torch.bfloat16, 128, 0.0))  # fmt: skip
    for dtype, T, p in cases:
        g = torch.Generator().manual_seed(0)
        q, k, v = (torch.randn(32, 4, T, 48, generator=g, dtype=dtype) for _ in range(3))
        grad = torch.randn(32, 4, T, 48, generator=g, dtype=dtype)
        fns = {"whole": _attention_step(T, (q, k, v), grad, p),
               "blocks": _attention_step(64, (q, k, v), grad, p)}  # fmt: skip
        if p == 0:
            fns["kernel"] = _attention_step(None, (q, k, v), grad, p)
        try:
            t = {n: statistics.median(ts) * 1e3
                 for n, ts in interleaved_times(fns, reps, loops=1).items()}  # fmt: skip
        finally:
            portable._CAUSAL_ROWS = 64
        kernel = f"{t['kernel']:.1f} ms" if "kernel" in t else "(no dropout there)"
        name = f"{str(dtype).removeprefix('torch.')}, T = {T}, dropout {p}"
        print(f"| attention fwd + bwd, {name} | {kernel} | {t['whole']:.1f} ms | "
              f"{t['blocks']:.1f} ms |")  # fmt: skip
    x = torch.randn(32, 128, 192)
    masks = {
        "bool + where": lambda: x * torch.where(keep_mask(x.shape, 0.1), dropout_scale(0.1), 0.0),
        "one pass": lambda: dropout_fn(x, 0.1),
    }  # fmt: skip
    t = {n: statistics.median(ts) * 1e3 for n, ts in interleaved_times(masks, reps).items()}
    print(f"| dropout of (32, 128, 192): bool mask + where, then one-pass mask | | "
          f"{t['bool + where']:.2f} ms | {t['one pass']:.2f} ms |")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, one repetition")
    parser.add_argument("--reps", type=int, default=11, help="interleaved repetitions")
    parser.add_argument(
        "--parts",
        action="store_true",
        help="only the attention blocks and dropout masks, on one thread",
    )
    args = parser.parse_args()
    if args.parts:
        parts(3 if args.quick else args.reps)
        return
    setup_threads()
    s = QUICK if args.quick else PRESET
    reps = 1 if args.quick else args.reps
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, s.vocab, (s.batch, s.context), generator=g)
    targets = torch.randint(0, s.vocab, (s.batch, s.context), generator=g)
    steps = {
        name: step_function(model, loss_of, ids, targets,
                            torch.bfloat16 if name.endswith("bf16") else torch.float32)
        for name, (model, loss_of) in contenders(s).items()
    }  # fmt: skip
    for step in steps.values():  # warm-up: allocator, optimizer state
        step()
        step()
    times = interleaved_times(steps, reps, loops=1)
    seconds = {name: statistics.median(ts) for name, ts in times.items()}
    tokens = s.batch * s.context
    peers = {n: t for n, t in seconds.items() if not n.startswith("attnlab")}
    fastest = min(peers, key=peers.get)
    print(f"GPT {s.layers} layers, {s.heads} heads, d={s.d}, context {s.context}, batch "
          f"{s.batch}, dropout {s.dropout}, AdamW + clipping, 2 threads, {reps} reps")  # fmt: skip
    print("| contender | ms / step (median) | tokens/s | its time ÷ attnlab float32's, per round |")
    print("|---|---|---|---|")
    for name, t in sorted(seconds.items(), key=lambda kv: kv[1]):
        ratio = f"{paired_ratio(times, name, 'attnlab'):.2f}"
        print(f"| {name} | {t * 1e3:,.0f} | {tokens / t:,.0f} | {ratio} |")
    rounds = paired_ratios(times, fastest, "attnlab")
    ours = paired_ratio(times, fastest, "attnlab")
    bf16 = paired_ratio(times, fastest, "attnlab bf16")
    print(f"fastest peer: {fastest}; attnlab float32 is {ours:.2f}× it (median of {reps} "
          f"rounds; lowest {min(rounds):.2f}, highest {max(rounds):.2f}), attnlab bf16 "
          f"{bf16:.2f}× it")  # fmt: skip


if __name__ == "__main__":
    main()
