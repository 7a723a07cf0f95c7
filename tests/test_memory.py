import doctest
from types import SimpleNamespace

import pytest

import attnlab.memory
from attnlab.memory import MARGIN, Estimate, attention_estimate, ensure_fits, training_estimate
from attnlab.nn.attention import MultiHeadAttention
from attnlab.train.config import TrainConfig
from attnlab.train.tasks import LMTask, TranslationTask


def test_doctest():
    assert doctest.testmod(attnlab.memory).failed == 0


def test_available_memory_is_read():
    have = attnlab.memory.available()
    assert have is not None and have > 2**20


def test_refuses_above_the_margin_with_the_estimate_and_what_the_machine_has():
    need = Estimate({"parameters": 800, "activations": 1})
    ensure_fits(Estimate({"parameters": 800}), have=1000)  # exactly MARGIN: fits
    with pytest.raises(ValueError, match=r"needs about 801 B \(parameters 800 B, activations 1 B\)"
                       r" of memory; this machine has 1000 B available, and attnlab refuses "
                       r"anything above 80% of that"):  # fmt: skip
        ensure_fits(need, have=1000)
    assert MARGIN == 0.8


@pytest.mark.parametrize(("d", "h", "kv"), [(128, 4, None), (96, 6, 2), (64, 1, None)])
def test_attention_parameters_are_the_module_s(d, h, kv):
    mha = MultiHeadAttention(d, h, n_kv_heads=kv)
    need = attention_estimate(d, h, batch=3, seq=5, n_kv_heads=kv)
    assert need.parts["parameters"] == 4 * sum(p.numel() for p in mha.parameters())
    assert need.parts["activations"] == 7 * 3 * 5 * d * 4
    assert need.parts["attention weights"] == 0
    weights = attention_estimate(d, h, batch=3, seq=5, n_kv_heads=kv, need_weights=True)
    assert weights.parts["attention weights"] == 3 * h * 5 * 5 * 4


@pytest.mark.parametrize("task", ["lm", "translate"])
def test_training_parameters_are_a_close_lower_bound_of_the_model_s(task):
    """Parameters ×4 (weights, gradients, AdamW's two moments), never more than the model has
    (a refusal must mean it could not fit), and within 5% of it."""
    config = TrainConfig(task=task, tokenizer="bpe", bpe_vocab=500, n_layers=2, d_model=64,
                         d_ff=256, context=32)  # fmt: skip
    tok = SimpleNamespace(vocab_size=500)
    build = (LMTask(config, tok, None, None) if task == "lm"
             else TranslationTask(config, tok, tok, [], [], [])).build_model  # fmt: skip
    real = sum(p.numel() for p in build().parameters())
    estimated = training_estimate(config).parts["parameters, gradients, AdamW state"] / (4 * 4)
    assert 0.95 * real <= estimated <= real
    one, two = training_estimate(config), training_estimate(config, processes=2)
    kept = "parameters, gradients, AdamW state"
    assert two.parts[kept] == 2 * one.parts[kept]  # a copy in each process
    assert two.parts["activations"] == one.parts["activations"]  # the batch split in two


def test_every_preset_fits_a_small_machine():
    from attnlab.train.config import PRESETS

    for values in PRESETS.values():
        ensure_fits(training_estimate(TrainConfig(**values)), have=2 * 2**30)  # 2 GiB
