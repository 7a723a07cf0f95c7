"""Scoring a translation run: ``bleu`` decodes what the model writes (its <bos> dropped, cut at
its first <eos>), in batches, and scores it with sacrebleu against the held-out references;
``alignment_figure`` translates a sentence and draws the cross-attention."""

import pytest
import sacrebleu
import torch
from tests.inspection.training_runs import translation_run

from attnlab.models.encoder_decoder import EncoderDecoder
from attnlab.train.tasks import TranslationTask, target_limit
from attnlab.train.trained import load_trained
from attnlab.train.translation_eval import alignment_figure, bleu


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return translation_run(tmp_path_factory.mktemp("translate"))


@pytest.fixture(scope="module")
def task(run):
    trained = load_trained(run)
    return TranslationTask.prepare(trained.config, tokenizers=trained.tokenizers)


def test_bleu_scores_what_the_model_wrote_against_each_verses_reference(run, task, monkeypatch):
    """A stand-in model writes each verse's reference ids for even verses and the first half
    of them for odd ones, then <eos> and a stray token after it; scored in batches of 3, the
    score is sacrebleu's on those texts in verse order, and the examples show them."""
    n = 7
    targets = {tuple(src): tgt for src, tgt in task.val_pairs[:n]}
    assert len(targets) == n
    order = [tuple(src) for src, _ in task.val_pairs[:n]]
    bos, eos = task.tgt_tok.bos_id, task.tgt_tok.eos_id

    def written(src: tuple[int, ...]) -> list[int]:
        tgt = targets[src]
        return tgt if order.index(src) % 2 == 0 else tgt[: len(tgt) // 2]

    def generate(self, src_ids, max_new_tokens, bos_id, eos_id, attention_mask=None):
        assert (bos_id, eos_id) == (bos, eos)
        rows = []
        for ids, keep in zip(src_ids.tolist(), attention_mask.tolist(), strict=True):
            src = tuple(i for i, k in zip(ids, keep, strict=True) if k)
            rows.append([bos, *written(src), eos, written(src)[0]])
        width = max(map(len, rows))
        return torch.tensor([row + [eos] * (width - len(row)) for row in rows])

    monkeypatch.setattr(EncoderDecoder, "generate", generate)
    score = bleu(run, n=n, batch=3)
    texts = [task.tgt_tok.decode(written(src)) for src in order]
    references = [es for _, es in task.val_text[:n]]
    assert score.n == n
    assert score.bleu == pytest.approx(sacrebleu.corpus_bleu(texts, [references]).score)
    assert [out for _, _, out in score.examples] == texts[:5]
    assert [(en, es) for en, es, _ in score.examples] == task.val_text[:5]


def test_alignment_figure_translates_and_draws_a_png(run, task, tmp_path):
    english = "In the beginning God created the heaven and the earth."
    translation, path = alignment_figure(run, english, tmp_path / "align.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    model = load_trained(run).model
    ids = model.generate(torch.tensor([task.src_tok.encode(english)]), target_limit(64),
                         task.tgt_tok.bos_id,
                         task.tgt_tok.eos_id)[0].tolist()  # fmt: skip
    ids = ids[1 : ids.index(task.tgt_tok.eos_id)] if task.tgt_tok.eos_id in ids else ids[1:]
    assert translation == task.tgt_tok.decode(ids)
