import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from attnlab import GPT, EncoderDecoder, EncoderDecoderConfig, GPTConfig
from attnlab.models.checkpoint import load_model, save_model


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


def test_weights_from_another_config_are_refused(tmp_path):
    save_model(small_gpt(), tmp_path)
    meta = json.loads((tmp_path / "config.json").read_text())
    meta["config"]["d_model"] = 32
    (tmp_path / "config.json").write_text(json.dumps(meta))
    with pytest.raises(
        ValueError,
        match=r"model.safetensors: \S+ has shape \(\d+.*\), the config expects \(",
    ):
        load_model(tmp_path)


def test_corrupted_weights_are_a_clear_error(tmp_path):
    save_model(small_gpt(), tmp_path)
    path = tmp_path / "model.safetensors"
    path.write_bytes(path.read_bytes()[:100])
    with pytest.raises(ValueError, match="is not a readable safetensors file"):
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
