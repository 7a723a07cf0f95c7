import json

import torch

from attnlab import GPT, GPTConfig
from attnlab.cli.main import main
from attnlab.experiments.common import CharCorpus
from attnlab.experiments.masking import (
    MaskingConfig,
    real_word_fraction,
    validation_losses,
)
from attnlab.models.checks import check_causal


def gpt(causal):
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=30, max_len=16, n_layers=1, n_heads=2, d_model=16,
                         causal=causal))  # fmt: skip


def test_causal_false_is_the_only_way_to_read_the_future():
    assert GPTConfig(vocab_size=5).causal
    assert check_causal(gpt(True), vocab_size=30).causal
    assert not check_causal(gpt(False), vocab_size=30).causal
    config = GPTConfig(vocab_size=5, causal=False)
    assert GPTConfig.from_dict(config.to_dict()) == config


def test_honest_loss_equals_teacher_forced_loss_only_for_a_causal_model():
    corpus = CharCorpus.load(plays=1, max_chars=20_000)
    config = MaskingConfig.quick()
    for causal in (True, False):
        torch.manual_seed(0)
        model = GPT(GPTConfig(vocab_size=corpus.tokenizer.vocab_size, max_len=config.context,
                              n_layers=1, n_heads=2, d_model=16, causal=causal)).eval()  # fmt: skip
        with torch.no_grad():  # large weights: sharp attention, so reading the future shows
            for p in model.parameters():
                p.normal_(0, 0.5)
        losses = validation_losses(model, corpus, config)
        same = abs(losses["honest"] - losses["teacher_forced"]) < 1e-4
        assert same == causal, losses
        assert losses["last_position"] > 0


def test_real_word_fraction_counts_letters():
    vocabulary = {"the", "king"}
    assert real_word_fraction("The king!", vocabulary) == 1.0
    assert real_word_fraction("the EMEMEMEME", vocabulary) == 3 / 12
    assert real_word_fraction("\n\n", vocabulary) == 0.0


def test_quick_run_writes_numbers_and_figure(tmp_path, capsys):
    assert main(["experiment", "masking", "--quick", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "masking.json").read_text())
    assert set(result["models"]) == {"masked", "unmasked"}
    masked, unmasked = result["models"]["masked"], result["models"]["unmasked"]
    assert masked["check_causal"]["causal"] and not unmasked["check_causal"]["causal"]
    assert "LEAK" in unmasked["check_causal"]["report"]
    for m in (masked, unmasked):
        assert len(m["loss_curve"]) == MaskingConfig.quick().steps
        assert set(m["validation"]) == {"teacher_forced", "honest", "last_position"}
        assert m["sample"].startswith("ROMEO:\n")
        assert len(m["sample"]) == len("ROMEO:\n") + MaskingConfig.quick().sample_chars
    assert (tmp_path / "masking.png").stat().st_size > 10_000
