"""TrainConfig refuses every out-of-range field, naming it, the limit and the value."""

import re

import pytest

from attnlab.train.config import TrainConfig, load_config


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("min_lr", -1.0, "min_lr must be a finite number in [0, inf); got -1.0"),
        ("warmup", -10, "warmup must be an integer >= 0; got -10"),
        ("time_limit", -1.0, "time_limit must be a finite number in [0, inf); got -1.0"),
        ("lr", float("inf"), "lr must be a finite number in (0, inf); got inf"),
        ("lr", float("nan"), "lr must be a finite number in (0, inf); got nan"),
        ("lr", 0.0, "lr must be a finite number in (0, inf); got 0.0"),
        ("lr", "0.1", "lr must be a finite number in (0, inf); got '0.1'"),
        ("bpe_vocab", -5, "bpe_vocab must be an integer >= 1; got -5"),
        ("max_words", 0, "max_words must be an integer >= 1; got 0"),
        ("steps", 1.5, "steps must be an integer >= 1; got 1.5"),
        ("batch", True, "batch must be an integer >= 1; got True"),
        ("dropout", 1.0, "dropout must be a finite number in [0, 1); got 1.0"),
        ("grad_clip", -1.0, "grad_clip must be a finite number in [0, inf); got -1.0"),
        ("weight_decay", float("inf"), "weight_decay must be a finite number in [0, inf)"),
        ("val_fraction", 1.0, "val_fraction must be a finite number in (0, 1); got 1.0"),
        ("seed", -1, "seed must be an integer >= 0; got -1"),
        ("task", "classify", "task must be one of ['lm', 'translate']; got 'classify'"),
        ("tokenizer", "word", "tokenizer must be one of ['char', 'bpe']; got 'word'"),
        ("out_dir", "", "out_dir must be a non-empty string; got ''"),
        ("corpus", 3, "corpus must be a non-empty string; got 3"),
    ],
)
def test_a_field_out_of_range_is_refused_naming_it(field, value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        TrainConfig(**{field: value})


def test_the_floor_of_the_learning_rate_is_at_most_its_peak():
    with pytest.raises(ValueError, match="min_lr must be at most lr = 0.001; got 0.01"):
        TrainConfig(lr=1e-3, min_lr=1e-2)


def test_a_config_path_must_be_a_toml_file(tmp_path):
    with pytest.raises(ValueError, match=f"config '{tmp_path}' is a folder; expected a TOML file"):
        load_config(toml_path=tmp_path)
    with pytest.raises(FileNotFoundError, match="config '.*missing.toml': no such file"):
        load_config(toml_path=tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("steps = = 3\n")
    with pytest.raises(ValueError, match="config '.*bad.toml' is not valid TOML"):
        load_config(toml_path=bad)
    wrong = tmp_path / "wrong.toml"
    wrong.write_text('steps = "many"\n')
    with pytest.raises(ValueError, match="steps must be an integer >= 1; got 'many'"):
        load_config(toml_path=wrong)
