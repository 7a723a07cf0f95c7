"""Training speed at the ``shakespeare-char`` preset's shape: attnlab vs the GPTs people train.

    python -m benchmarks.training            # 4 layers, 4 heads, d=192, context 128, batch 32
    python -m benchmarks.training --quick    # a smoke run (tiny model, one repetition)
    python -m benchmarks.training --parts    # attention blocks and dropout masks, one thread
    python -m benchmarks.training --parts --threads 2

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

A step is forward, loss, backward, clipping, optimizer step. Each contender runs in its own
process, as users run them, and the processes step in turn within each round (interleaved), 2
threads; tokens/s from the median step time; ratios are the medians of per-round ratios against
attnlab's float32 step. One process each because in one shared process the contenders'
allocations share one heap, and each one's page faults (thousands per step here) depend on what
the others allocated and freed before it: attnlab's step took 462 ms with 4,762 faults when it
ran first in a process, 370 ms with 1,088 after the plain GPT had run (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")  # same for every contender; see attention.py

import contextlib
import multiprocessing
import resource
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection

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


NAMES = ("attnlab", "attnlab bf16", "plain PyTorch GPT", "x-transformers",
         "Hugging Face GPT-2 (sdpa)")  # fmt: skip


def contender(name: str, s: Shape) -> tuple[nn.Module, Callable[[Tensor, Tensor], Tensor]]:
    """(model in training mode, loss(ids, targets)) of one contender, seeded alike."""
    torch.manual_seed(0)
    if name.startswith("attnlab"):
        from attnlab.models.config import GPTConfig
        from attnlab.models.gpt import GPT

        ours = GPT(GPTConfig(vocab_size=s.vocab, max_len=s.context, n_layers=s.layers,
                             n_heads=s.heads, d_model=s.d, d_ff=4 * s.d, dropout=s.dropout,
                             activation="gelu"))  # fmt: skip
        return ours, lambda ids, targets: ours(ids, targets=targets).loss
    if name == "plain PyTorch GPT":
        model = PlainGPT(s)
    elif name == "x-transformers":
        from x_transformers import Decoder, TransformerWrapper

        model = TransformerWrapper(
            num_tokens=s.vocab, max_seq_len=s.context, emb_dropout=s.dropout,
            attn_layers=Decoder(dim=s.d, depth=s.layers, heads=s.heads,
                                attn_dropout=s.dropout, ff_dropout=s.dropout),
        )  # fmt: skip
    elif name == "Hugging Face GPT-2 (sdpa)":
        from transformers import GPT2Config, GPT2LMHeadModel

        hf = GPT2LMHeadModel(GPT2Config(
            vocab_size=s.vocab, n_positions=s.context, n_embd=s.d, n_layer=s.layers,
            n_head=s.heads, resid_pdrop=s.dropout, embd_pdrop=s.dropout, attn_pdrop=s.dropout,
            bos_token_id=0, eos_token_id=0, attn_implementation="sdpa",
        ))  # fmt: skip
        model = _Logits(hf)
    else:
        raise ValueError(f"name must be one of {NAMES}; got {name!r}")
    return model, lambda ids, targets: F.cross_entropy(model(ids).flatten(0, 1),
                                                       targets.flatten())  # fmt: skip


class _Logits(nn.Module):
    """A Hugging Face causal LM as ids → logits."""

    def __init__(self, lm: nn.Module) -> None:
        super().__init__()
        self.lm = lm

    def forward(self, ids: Tensor) -> Tensor:
        return self.lm(ids).logits


def _dtype(name: str) -> torch.dtype:
    return torch.bfloat16 if name.endswith("bf16") else torch.float32


def _batch(s: Shape) -> tuple[Tensor, Tensor]:
    """One fixed batch of random token ids and targets, the same for every contender."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, s.vocab, (s.batch, s.context), generator=g)
    return ids, torch.randint(0, s.vocab, (s.batch, s.context), generator=g)


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


def _autograd_attention(q: Tensor, k: Tensor, v: Tensor, p: float, rows: int) -> Tensor:
    """Causal attention with dropout through autograd's own operations, by blocks of ``rows``
    query rows (rows ≥ T: the whole square): what attnlab ran before its own backward."""
    from attnlab.functional.causal_blocks import causal_triangle
    from attnlab.functional.dropout import dropout as dropout_fn

    T = q.shape[-2]
    q3, k3, v3 = (t.reshape(-1, T, t.shape[-1]) for t in (q, k, v))  # (N, T, d)
    blocks = []
    for r0 in range(0, T, rows):
        r1 = min(T, r0 + rows)
        s = torch.baddbmm(causal_triangle(r0, r1 - r0, r1, q.dtype, q.device), q3[:, r0:r1],
                          k3[:, :r1].transpose(1, 2), alpha=q.shape[-1] ** -0.5)  # fmt: skip
        w = torch.softmax(s, dim=-1, dtype=torch.float32).to(v.dtype)
        blocks.append(torch.bmm(dropout_fn(w, p), v3[:, :r1]))
    return torch.cat(blocks, dim=1).view(v.shape)


def _attention_step(route: str, inputs: tuple[Tensor, ...], grad: Tensor, p: float
                    ) -> Callable[[], None]:  # fmt: skip
    """Forward + backward of causal attention on fresh leaves of ``inputs`` by ``route``."""
    from attnlab.functional.causal_blocks import causal_blocks

    def run() -> None:
        q, k, v = (t.detach().requires_grad_() for t in inputs)
        T = q.shape[-2]
        if route == "kernel":
            out = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        elif route == "attnlab":
            out = causal_blocks(q, k, v, q.shape[-1] ** -0.5, p)
        else:
            out = _autograd_attention(q, k, v, p, rows=T if route == "whole" else 64)
        out.backward(grad)

    return run


def parts(reps: int, threads: int = 1) -> None:
    """On ``threads`` threads: forward + backward of causal attention on views of a
    (32, T, 3·192) Q/K/V projection, through autograd's operations over the whole square and
    by blocks of 64 query rows, through attnlab's blocks with their own backward, and without
    dropout also PyTorch's kernel (``F.scaled_dot_product_attention``); and dropout of
    (32, 128, 192) with a bool mask + ``where`` against the comparison written into float32."""
    from attnlab.functional.dropout import dropout as dropout_fn
    from attnlab.functional.dropout import dropout_scale, keep_mask

    torch.set_num_threads(threads)
    routes = {
        "kernel": "PyTorch's kernel",
        "whole": "autograd, whole square",
        "blocks": "autograd, blocks of 64",
        "attnlab": "attnlab's blocks, own backward",
    }
    print("| case | " + " | ".join(routes.values()) + " |")
    print("|---" * (len(routes) + 1) + "|")
    cases = ((torch.float32, 128, 0.1), (torch.bfloat16, 128, 0.1), (torch.float32, 512, 0.1),
             (torch.float32, 128, 0.0), (torch.bfloat16, 128, 0.0),
             (torch.float32, 512, 0.0))  # fmt: skip
    for dtype, T, p in cases:
        g = torch.Generator().manual_seed(0)
        qkv = torch.randn(32, T, 3 * 192, generator=g, dtype=dtype)
        inputs = tuple(t.view(32, T, 4, 48).transpose(1, 2) for t in qkv.split(192, dim=2))
        grad = torch.randn(32, 4, T, 48, generator=g, dtype=dtype)
        fns = {r: _attention_step(r, inputs, grad, p) for r in routes if p == 0 or r != "kernel"}
        t = {n: statistics.median(ts) * 1e3
             for n, ts in interleaved_times(fns, reps, loops=1).items()}  # fmt: skip
        cells = [f"{t[r]:.1f} ms" if r in t else "(no dropout there)" for r in routes]
        name = f"{str(dtype).removeprefix('torch.')}, T = {T}, dropout {p}"
        print(f"| attention fwd + bwd, {name} | " + " | ".join(cells) + " |")
    x = torch.randn(32, 128, 192)
    masks = {
        "bool + where": lambda: x * torch.where(keep_mask(x.shape, 0.1), dropout_scale(0.1), 0.0),
        "one pass": lambda: dropout_fn(x, 0.1),
    }  # fmt: skip
    t = {n: statistics.median(ts) * 1e3 for n, ts in interleaved_times(masks, reps).items()}
    print("\n| dropout of (32, 128, 192) | bool mask + where | one-pass mask |\n|---|---|---|")
    print(f"| random draws included | {t['bool + where']:.2f} ms | {t['one pass']:.2f} ms |")


def _timed_step(step: Callable[[], None]) -> tuple[float, int]:
    """(seconds, minor page faults of this process) of one step."""
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    step()
    seconds = time.perf_counter() - start
    return seconds, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults


def _ready_step(name: str, s: Shape) -> Callable[[], None]:
    """A contender's training step after two warm-up steps (allocator, optimizer state)."""
    model, loss_of = contender(name, s)
    step = step_function(model, loss_of, *_batch(s), _dtype(name))
    step()
    step()
    return step


def _worker(name: str, s: Shape, conn: Connection) -> None:
    """One contender alone in its own process, as a user runs it: one step per request."""
    setup_threads()
    step = _ready_step(name, s)
    conn.send("ready")
    while conn.recv():
        conn.send(_timed_step(step))


def isolated_rounds(s: Shape, reps: int) -> dict[str, list[tuple[float, int]]]:
    """Each contender in its own process (its own heap, as when users run them), the processes
    stepping in turn within each round so machine load meets every contender alike; the others
    wait on a pipe meanwhile. name → [(seconds, page faults)] per round."""
    context = multiprocessing.get_context("spawn")
    workers = {}
    for name in NAMES:
        ours, theirs = context.Pipe()
        process = context.Process(target=_worker, args=(name, s, theirs), daemon=True)
        process.start()
        theirs.close()  # the worker holds its end: if it dies, recv() here raises EOFError
        workers[name] = (process, ours)
    try:
        for _, conn in workers.values():
            conn.recv()  # "ready"
        rounds: dict[str, list[tuple[float, int]]] = {name: [] for name in NAMES}
        for r in range(reps):  # each round starts one contender later: no fixed neighbours
            for name in NAMES[r % len(NAMES) :] + NAMES[: r % len(NAMES)]:
                conn = workers[name][1]
                conn.send(True)
                rounds[name].append(conn.recv())
        return rounds
    finally:
        for process, conn in workers.values():
            with contextlib.suppress(OSError):
                conn.send(False)
            process.join(timeout=30)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny model, one repetition")
    parser.add_argument("--reps", type=int, default=11, help="interleaved repetitions")
    parser.add_argument(
        "--parts",
        action="store_true",
        help="only the attention blocks and dropout masks (one thread unless --threads)",
    )
    parser.add_argument("--threads", type=int, default=1, help="threads for --parts")
    args = parser.parse_args()
    if args.parts:
        parts(3 if args.quick else args.reps, args.threads)
        return
    s = QUICK if args.quick else PRESET
    reps = 1 if args.quick else args.reps
    rounds = isolated_rounds(s, reps)
    times = {name: [t for t, _ in r] for name, r in rounds.items()}
    faults = {name: statistics.median(f for _, f in r) for name, r in rounds.items()}
    seconds = {name: statistics.median(ts) for name, ts in times.items()}
    tokens = s.batch * s.context
    peers = {n: t for n, t in seconds.items() if not n.startswith("attnlab")}
    fastest = min(peers, key=peers.get)
    print(f"GPT {s.layers} layers, {s.heads} heads, d={s.d}, context {s.context}, batch "
          f"{s.batch}, dropout {s.dropout}, AdamW + clipping, 2 threads, {reps} rounds, one "
          f"process each")  # fmt: skip
    print("| contender | ms / step (median) | tokens/s | page faults / step | its time ÷ attnlab "
          "float32's, per round |")  # fmt: skip
    print("|---|---|---|---|---|")
    for name, t in sorted(seconds.items(), key=lambda kv: kv[1]):
        ratio = f"{paired_ratio(times, name, 'attnlab'):.2f}"
        print(f"| {name} | {t * 1e3:,.0f} | {tokens / t:,.0f} | {faults[name]:,.0f} | {ratio} |")
    per_round = paired_ratios(times, fastest, "attnlab")
    ours = paired_ratio(times, fastest, "attnlab")
    bf16 = paired_ratio(times, fastest, "attnlab bf16")
    print(f"fastest peer: {fastest}; attnlab float32 is {ours:.2f}× it (median of {reps} "
          f"rounds; lowest {min(per_round):.2f}, highest {max(per_round):.2f}), attnlab bf16 "
          f"{bf16:.2f}× it")  # fmt: skip


if __name__ == "__main__":
    main()
