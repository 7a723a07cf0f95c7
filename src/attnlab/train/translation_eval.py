"""Judging a translation checkpoint: BLEU on the held-out verses (sacrebleu) and a picture of
the decoder's cross-attention, which should align each Spanish token with the English words it
translates (a roughly monotone diagonal for simple verses).

Dimension legend: B batch, S source tokens, T target tokens, H heads.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from attnlab.atomic import atomic_write
from attnlab.inspection.capture import capture
from attnlab.train.tasks import TranslationTask, collate, source_limit, target_limit
from attnlab.train.trained import load_trained

__all__ = ["TranslationScore", "alignment_figure", "bleu"]


@dataclass(frozen=True)
class TranslationScore:
    bleu: float  # sacrebleu corpus BLEU, 0–100
    n: int  # verses translated
    examples: list[tuple[str, str, str]]  # (English, reference Spanish, model output)


def _load(checkpoint: str | Path) -> tuple[TranslationTask, torch.nn.Module]:
    trained = load_trained(checkpoint)
    if trained.config.task != "translate":
        raise ValueError(f"{checkpoint} is a {trained.config.task!r} checkpoint, not translation")
    return TranslationTask.prepare(trained.config, tokenizers=trained.tokenizers), trained.model


@torch.no_grad()
def bleu(checkpoint: str | Path, n: int = 200, batch: int = 32) -> TranslationScore:
    """Greedy-translate the first ``n`` held-out verses and score them against the references."""
    import sacrebleu

    task, model = _load(checkpoint)
    pairs, texts = task.val_pairs[:n], task.val_text[:n]
    outputs: list[str] = []
    for i in range(0, len(pairs), batch):
        chunk = collate(pairs[i : i + batch], task.src_tok, task.tgt_tok)
        ids = model.generate(
            chunk["src_ids"], target_limit(task.config.context), task.tgt_tok.bos_id,
            task.tgt_tok.eos_id, attention_mask=chunk["attention_mask"],
        )  # fmt: skip
        for row in ids.tolist():
            row = row[1:]  # drop <bos>
            if task.tgt_tok.eos_id in row:
                row = row[: row.index(task.tgt_tok.eos_id)]
            outputs.append(task.tgt_tok.decode(row))
    refs = [es for _, es in texts]
    score = sacrebleu.corpus_bleu(outputs, [refs]).score
    examples = [(en, es, out) for (en, es), out in zip(texts[:5], outputs[:5], strict=True)]
    return TranslationScore(score, len(outputs), examples)


@torch.no_grad()
def alignment_figure(checkpoint: str | Path, english: str, out: str | Path) -> tuple[str, Path]:
    """Translate ``english`` and draw the last decoder layer's cross-attention, averaged over
    heads: rows = generated Spanish tokens, columns = English tokens."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    task, model = _load(checkpoint)
    context = task.config.context
    src = torch.tensor([task.src_tok.encode(english)[: source_limit(context)]])
    ids = model.generate(src, target_limit(context), task.tgt_tok.bos_id, task.tgt_tok.eos_id)
    tgt = ids[:, :-1] if ids[0, -1] == task.tgt_tok.eos_id else ids
    with capture(model) as maps:
        model(src, tgt)
    last = f"decoder.layers.{len(model.decoder.layers) - 1}.cross_attn"
    weights = maps[last].dense()[0].mean(0)  # (T, S)
    # Each token's own text (byte-level BPE pieces decoded one by one, so "á" shows as "á").
    src_labels = [task.src_tok.decode([i]).strip() for i in src[0].tolist()]
    tgt_labels = [task.tgt_tok.decode([i]).strip() for i in tgt[0].tolist()]
    fig, ax = plt.subplots(figsize=(0.45 * len(src_labels) + 2, 0.45 * len(tgt_labels) + 1.5))
    ax.imshow(weights.numpy(), cmap="magma", vmin=0)
    ax.set_xticks(range(len(src_labels)), src_labels, rotation=90)
    ax.set_yticks(range(len(tgt_labels)), ["<bos>", *tgt_labels[1:]])
    ax.set_xlabel("English (source)")
    ax.set_ylabel("Spanish (generated, input side)")
    translation = task.tgt_tok.decode(tgt[0, 1:].tolist())
    ax.set_title(f"cross-attention, last decoder layer, mean of heads\n→ {translation}", fontsize=9)
    atomic_write(out, lambda tmp: fig.savefig(tmp, dpi=120, bbox_inches="tight"))
    plt.close(fig)
    return translation, Path(out)
