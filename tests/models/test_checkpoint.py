import dataclasses
import json
from pathlib import Path

import pytest
import safetensors.torch
import torch
from safetensors import safe_open
from safetensors.torch import load_file

from attnlab import GPT, EncoderDecoder, EncoderDecoderConfig, GPTConfig
from attnlab.models.checkpoint import load_model, save_model, tied_weights


def small_gpt():
    return GPT(GPTConfig(vocab_size=30, max_len=16, n_layers=1, n_heads=2, d_model=16)).eval()


def test_round_trip_keeps_outputs_and_tied_weights(tmp_path):
    gpt = small_gpt()
    loaded = load_model(save_model(gpt, tmp_path))
    ids = torch.randint(0, 30, (2, 7))
    assert torch.equal(gpt(ids).logits, loaded(ids).logits)
    assert loaded.lm_head.weight is loaded.token_embedding.weight


def test_encoder_decoder_round_trip(tmp_path):
    config = EncoderDecoderConfig(src_vocab_size=10, tgt_vocab_size=12, max_len=8, n_heads=2,
                                  d_model=8, d_ff=16, n_encoder_layers=1, n_decoder_layers=1)  # fmt: skip
    model = EncoderDecoder(config).eval()
    loaded = load_model(save_model(model, tmp_path))
    src, tgt = torch.randint(0, 10, (1, 5)), torch.randint(0, 12, (1, 4))
    assert torch.equal(model(src, tgt).logits, loaded(src, tgt).logits)


def test_tied_weights_are_found_on_the_model_and_stored_once(tmp_path):
    gpt = small_gpt()
    assert tied_weights(gpt) == {"lm_head.weight": "token_embedding.weight"}
    untied = GPT(GPTConfig(vocab_size=30, max_len=16, n_layers=1, n_heads=2, d_model=16,
                           tie_weights=False))  # fmt: skip
    assert tied_weights(untied) == {}
    shared = torch.nn.Linear(3, 3)
    twice = torch.nn.Sequential(shared, torch.nn.ReLU(), shared)
    assert tied_weights(twice) == {"2.weight": "0.weight", "2.bias": "0.bias"}
    save_model(gpt, tmp_path)
    stored = safetensors.torch.load_file(tmp_path / "model.safetensors")
    assert "lm_head.weight" not in stored and "token_embedding.weight" in stored
    assert set(stored) == set(gpt.state_dict()) - {"lm_head.weight"}


def test_a_folder_of_the_previous_format_still_loads(tmp_path):
    gpt = small_gpt()
    # attnlab/1, written here as it was: config.json + a metadata-free state dict, the tied
    # lm_head.weight left out
    (tmp_path / "config.json").write_text(
        json.dumps({"architecture": "GPT", "config": dataclasses.asdict(gpt.config)})
    )
    state = {k: v.contiguous() for k, v in gpt.state_dict().items() if k != "lm_head.weight"}
    safetensors.torch.save_file(state, tmp_path / "model.safetensors")
    loaded = load_model(tmp_path)
    ids = torch.randint(0, 30, (2, 7))
    assert torch.equal(gpt(ids).logits, loaded(ids).logits)
    assert loaded.lm_head.weight is loaded.token_embedding.weight


def rewrite_metadata(path, **changes):
    with safe_open(str(path), framework="pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    safetensors.torch.save_file(tensors, path, metadata={**meta, **changes})


def test_weights_from_another_config_are_refused(tmp_path):
    save_model(small_gpt(), tmp_path)
    path = tmp_path / "model.safetensors"
    config = small_gpt().config.to_dict()
    rewrite_metadata(path, config=json.dumps({**config, "d_model": 32}))
    with pytest.raises(
        ValueError,
        match=r"model.safetensors: \S+ has shape \(\d+.*\), the config expects \(",
    ):
        load_model(tmp_path)


def test_a_file_of_another_format_is_refused(tmp_path):
    save_model(small_gpt(), tmp_path)
    rewrite_metadata(tmp_path / "model.safetensors", format="something/9")
    with pytest.raises(ValueError, match="not an attnlab model checkpoint .*'something/9'"):
        load_model(tmp_path)


def test_corrupted_weights_are_a_clear_error(tmp_path):
    save_model(small_gpt(), tmp_path)
    path = tmp_path / "model.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="is not a readable checkpoint"):
        load_model(tmp_path)


def test_missing_folder_contents(tmp_path):
    with pytest.raises(FileNotFoundError, match="not an attnlab checkpoint"):
        load_model(tmp_path)


DATA = Path(__file__).parent / "data"


def test_a_gpt_saved_before_the_decoder_only_layer_class_loads_with_the_same_logits():
    # Written by the code of f4696b5, when GPT's blocks were EncoderLayers.
    loaded = load_model(DATA / "gpt_before_hooks")
    expected = load_file(DATA / "gpt_before_hooks" / "expected.safetensors")
    assert type(loaded.layers[0]).__name__ == "DecoderOnlyLayer"
    torch.testing.assert_close(
        loaded(expected["input_ids"]).logits, expected["logits"], atol=1e-6, rtol=0
    )


def test_an_encoder_decoder_config_saying_tie_output_still_loads():
    # Written by the code of f4696b5: its config.json says "tie_output", padding was src_...
    folder = DATA / "encoder_decoder_before_hooks"
    assert '"tie_output": true' in (folder / "config.json").read_text()
    loaded = load_model(folder)
    expected = load_file(folder / "expected.safetensors")
    assert loaded.config.tie_weights and loaded.output.weight is loaded.decoder.embedding.weight
    out = loaded(expected["src_ids"], expected["tgt_ids"], attention_mask=expected["src_is_real"])
    torch.testing.assert_close(out.logits, expected["logits"], atol=1e-6, rtol=0)


def test_tie_output_maps_to_tie_weights_and_a_conflict_is_refused():
    base = {"src_vocab_size": 5, "tgt_vocab_size": 6}
    assert not EncoderDecoderConfig.from_dict({**base, "tie_output": False}).tie_weights
    with pytest.raises(ValueError, match="both tie_output=False .* and tie_weights=True"):
        EncoderDecoderConfig.from_dict({**base, "tie_output": False, "tie_weights": True})
