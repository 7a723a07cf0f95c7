"""attnlab.capture on Hugging Face models through transformers' AttentionInterface: exact weights
(against eager ``output_attentions``), unchanged outputs, restored configs, refusals."""

from __future__ import annotations

import pytest
import torch
import transformers as tf

import attnlab
from attnlab.inspection.hf import _implementations
from attnlab.inspection.hf_attention import attention_forward

from .hf_zoo import ZOO, Arch

# Architectures whose default implementation is eager (no SDPA support): their outputs under
# capture are compared with eager to a tolerance instead of bit for bit.
DEFAULT_EAGER = {"gemma2", "gpt_oss"}


def batch(arch: Arch, padding: str) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(3, 90, (2, 7), generator=g)
    mask = torch.ones(2, 7, dtype=torch.long)
    if padding == "left":
        mask[0, :3] = 0
    elif padding == "right":
        mask[0, -2:] = 0
    if arch.kind in ("decoder", "encoder"):
        return {"input_ids": ids, "attention_mask": mask}
    if arch.name == "whisper":
        return {
            "input_features": torch.randn(2, 8, 32, generator=g),
            "decoder_input_ids": ids[:, :5],
        }
    if arch.kind == "seq2seq":
        return {"input_ids": ids, "attention_mask": mask, "decoder_input_ids": ids[:, :5]}
    return {"pixel_values": torch.randn(2, 3, 16, 16, generator=g)}


def paddings(arch: Arch) -> list[str]:
    if arch.kind == "vision" or arch.name == "whisper":
        return ["none"]
    return ["none", "right", "left"] if arch.left_padding else ["none", "right"]


CASES = [(name, p) for name, arch in ZOO.items() for p in paddings(arch)]


def eager_weights(arch: Arch, inputs: dict) -> dict[str, list[torch.Tensor]]:
    model = arch.build()
    model.set_attn_implementation("eager")
    with torch.no_grad():
        out = model(**inputs, output_attentions=True)
    if arch.kind == "seq2seq":
        return {"encoder": list(out.encoder_attentions), "decoder": list(out.decoder_attentions),
                "cross": list(out.cross_attentions)}  # fmt: skip
    return {"self": list(out.attentions)}


def valid_rows(arch: Arch, inputs: dict, role: str) -> torch.Tensor | None:
    """Query rows to compare: eager gives fully masked (left-padding) rows uniform weights where
    the flash kernel gives 0, so rows of padding queries are left out."""
    if role in ("self", "encoder") and "attention_mask" in inputs:
        return inputs["attention_mask"].bool()  # (B, Lq)
    return None


@pytest.mark.parametrize(("name", "padding"), CASES)
def test_weights_equal_eager_and_outputs_unchanged(name: str, padding: str) -> None:
    arch = ZOO[name]
    inputs = batch(arch, padding)
    model = arch.build()
    with torch.no_grad():
        default = model(**inputs)
        with attnlab.capture(model) as maps:
            captured = model(**inputs)
    first = next(iter(default.values()))
    got = next(iter(captured.values()))
    if name in DEFAULT_EAGER:  # eager gives padding queries uniform weights, attnlab 0
        real = inputs["attention_mask"].bool()
        torch.testing.assert_close(got[real], first[real], rtol=0, atol=1e-5)
    else:
        assert torch.equal(got, first), f"{name}: outputs changed under capture"
    eager = eager_weights(arch, inputs)
    for role, expected in eager.items():
        names = maps.of_role(role)
        assert len(names) == len(expected), (role, names)
        for layer, want in zip(names, expected, strict=True):
            weights = maps[layer].rows()
            assert weights.shape == want.shape, (layer, weights.shape, want.shape)
            rows = valid_rows(arch, inputs, role)
            if rows is not None:
                weights, want = (
                    weights[rows[:, None, :].expand_as(weights[..., 0])],
                    want[rows[:, None, :].expand_as(want[..., 0])],
                )
            torch.testing.assert_close(weights, want, rtol=0, atol=1e-5, msg=layer)


@pytest.mark.parametrize("name", sorted(ZOO))
def test_configs_restored_even_when_the_block_raises(name: str) -> None:
    model = ZOO[name].build()
    before = [(c, c._attn_implementation_internal) for c, _ in _implementations(model)]
    with pytest.raises(RuntimeError, match="boom"), attnlab.capture(model):
        assert model.config._attn_implementation == "attnlab"
        raise RuntimeError("boom")
    assert [(c, c._attn_implementation_internal) for c, _ in before] == before


def test_grouped_query_keys_are_stored_once_per_key_value_head() -> None:
    arch = ZOO["llama"]
    model = arch.build()
    with torch.no_grad(), attnlab.capture(model) as maps:
        model(**batch(arch, "none"))
    amap = maps["model.layers.0.self_attn"]
    assert amap.q.shape[1] == 4 and amap.k.shape[1] == 2 and amap.kv_groups == 2


def test_output_attentions_under_capture_returns_exact_weights() -> None:
    arch = ZOO["gpt2"]  # GPT-2 does not pass output_attentions down: the recorder is asked
    inputs = batch(arch, "right")
    model = arch.build()
    with torch.no_grad(), attnlab.capture(model):
        got = model(**inputs, output_attentions=True).attentions
    want = eager_weights(arch, inputs)["self"]
    for g, w in zip(got, want, strict=True):
        assert g is not None
        torch.testing.assert_close(g, w, rtol=0, atol=1e-5)


def test_roles_name_source_and_target_sides() -> None:
    arch = ZOO["bart"]
    model = arch.build()
    with torch.no_grad(), attnlab.capture(model) as maps:
        model(**batch(arch, "none"))
    assert maps.role("model.encoder.layers.0.self_attn") == "encoder"
    assert maps.role("model.decoder.layers.1.self_attn") == "decoder"
    assert maps.of_role("cross") == [
        "model.decoder.layers.0.encoder_attn",
        "model.decoder.layers.1.encoder_attn",
    ]
    assert maps["model.decoder.layers.0.encoder_attn"].shape == (2, 4, 5, 7)  # target × source


def test_model_that_bypasses_the_interface_is_refused_and_left_unchanged() -> None:
    torch.manual_seed(0)
    model = tf.BloomForCausalLM(tf.BloomConfig(hidden_size=64, n_layer=2, n_head=4, vocab_size=97))
    before = [(c, c._attn_implementation_internal) for c, _ in _implementations(model)]
    ids = torch.randint(0, 97, (1, 6))
    with torch.no_grad():
        want = model(ids).logits
    refused = pytest.raises(ValueError, match="BloomForCausalLM.*AttentionInterface")
    with refused, attnlab.capture(model):
        pass
    assert [(c, c._attn_implementation_internal) for c, _ in before] == before
    with torch.no_grad():
        assert torch.equal(model(ids).logits, want)


def test_unknown_keyword_arguments_are_refused() -> None:
    q = torch.randn(1, 2, 3, 4)
    module = torch.nn.Module()
    with pytest.raises(ValueError, match=r"\['sinks'\]"):
        attention_forward(module, q, q, q, None, sinks=torch.zeros(2))
    out, _ = attention_forward(module, q, q, q, None, position_ids=None, use_cache=True)
    assert out.shape == (1, 3, 2, 4)


def test_sinks_take_probability_mass_as_in_eager() -> None:
    arch = ZOO["gpt_oss"]
    inputs = batch(arch, "none")
    model = arch.build()
    with torch.no_grad(), attnlab.capture(model) as maps:
        model(**inputs)
    sums = maps["model.layers.0.self_attn"].rows().sum(-1)
    assert (sums < 1 - 1e-4).all()  # a sink keeps part of each row


@pytest.mark.parametrize("name", ["llama", "gemma2", "t5"])
def test_bfloat16_weights_match_float32_eager(name: str) -> None:
    """bf16 maps are rebuilt in float32 from bf16 queries and keys; float32 eager differs by
    the bf16 rounding of the whole model (measured: 1e-4 for Llama, 7e-4 Gemma 2, 5e-3 T5).
    Documented tolerance: 1e-2."""
    arch = ZOO[name]
    inputs = batch(arch, "right")
    model = arch.build().to(torch.bfloat16)
    with torch.no_grad(), attnlab.capture(model) as maps:
        model(**inputs)
    role = "encoder" if arch.kind == "seq2seq" else "self"
    want = eager_weights(arch, inputs)[role]
    rows = inputs["attention_mask"].bool()[:, None, :]
    for layer, w in zip(maps.of_role(role), want, strict=True):
        got = maps[layer].rows()
        assert got.dtype == torch.float32
        torch.testing.assert_close(got[rows.expand_as(got[..., 0])],
                                   w[rows.expand_as(w[..., 0])], rtol=0, atol=1e-2)  # fmt: skip


def test_t5_decoder_padding_rows_are_zero_not_ones() -> None:
    """T5 folds its position bias with finfo.min: a fully masked row must rebuild to 0."""
    arch = ZOO["t5"]
    model = arch.build()
    ids = torch.randint(3, 90, (2, 6), generator=torch.Generator().manual_seed(9))
    decoder_mask = torch.ones(2, 5, dtype=torch.long)
    decoder_mask[0, :2] = 0  # left-padded target
    inputs = {"input_ids": ids, "decoder_input_ids": ids[:, :5],
              "decoder_attention_mask": decoder_mask}  # fmt: skip
    with torch.no_grad(), attnlab.capture(model) as maps:
        model(**inputs)
    want = eager_weights(arch, inputs)["decoder"]
    real = decoder_mask.bool()
    for layer, w in zip(maps.of_role("decoder"), want, strict=True):
        got = maps[layer].rows()
        assert torch.all(got[0, :, :2] == 0), layer  # the padding queries see no key
        keep = real[:, None, :].expand_as(got[..., 0])
        torch.testing.assert_close(got[keep], w[keep], rtol=0, atol=1e-5)
