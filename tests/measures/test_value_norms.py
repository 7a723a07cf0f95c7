"""Value-weighted norms (Kobayashi et al., 2020) against hand computations."""

from __future__ import annotations

import pytest
import torch
import transformers as tf

from attnlab import measures
from attnlab.models.config import GPTConfig
from attnlab.models.gpt import GPT


def test_one_head_layer_equals_the_hand_computation() -> None:
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=30, max_len=16, n_layers=1, n_heads=1, d_model=8)).eval()
    ids = torch.randint(0, 30, (1, 6), generator=torch.Generator().manual_seed(1))
    attn = gpt.layers[0].self_attn
    seen = {}
    handle = attn.register_forward_pre_hook(lambda m, args, kwargs: seen.update(x=args[0]),
                                            with_kwargs=True)  # fmt: skip
    with torch.no_grad():
        weights = gpt(ids, need_weights=True).attentions[0][0, 0]  # (T, T)
    handle.remove()
    x = seen["x"][0]  # (T, D): the attention's input
    v = x @ attn.v_proj.weight.T + attn.v_proj.bias  # (T, d)
    f = v @ attn.out_proj.weight.T  # (T, D): W_O without its bias
    want = weights * f.norm(dim=-1)[None, :]  # α_ij ‖f(x_j)‖
    got = measures.value_norms(gpt, {"input_ids": ids})["layers.0.self_attn"]
    torch.testing.assert_close(got[0, 0], want, rtol=1e-5, atol=1e-6)
    combined = measures.value_norms(gpt, {"input_ids": ids}, combine_heads=True)
    torch.testing.assert_close(combined["layers.0.self_attn"][0], want, rtol=1e-5, atol=1e-6)


def test_bert_per_head_and_layer_norms_equal_eager_weights_and_its_projections() -> None:
    torch.manual_seed(0)
    config = tf.BertConfig(hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                           intermediate_size=48, vocab_size=50)  # fmt: skip
    model = tf.BertModel(config).eval()
    ids = torch.randint(0, 50, (1, 7), generator=torch.Generator().manual_seed(2))
    model.set_attn_implementation("eager")
    with torch.no_grad():
        out = model(ids, output_attentions=True, output_hidden_states=True)
    model.set_attn_implementation("sdpa")
    layer = model.encoder.layer[1]
    x = out.hidden_states[1][0]  # (T, D): layer 1's input
    v = layer.attention.self.value(x).view(7, 4, 8).transpose(0, 1)  # (H, T, d)
    w_o = layer.attention.output.dense.weight.view(32, 4, 8)  # (D, H, d)
    f = torch.einsum("htd,Dhd->htD", v, w_o)  # (H, T, D)
    alpha = out.attentions[1][0]  # (H, T, T)
    want_heads = alpha * f.norm(dim=-1)[:, None, :]
    want_layer = torch.einsum("hij,hjD->ijD", alpha, f).norm(dim=-1)
    name = "encoder.layer.1.attention.self"
    got = measures.value_norms(model, {"input_ids": ids}, layer=name)
    torch.testing.assert_close(got[name][0], want_heads, rtol=1e-4, atol=1e-6)
    row = measures.value_norms(model, {"input_ids": ids}, layer=name, target=3, combine_heads=True)
    torch.testing.assert_close(row[name][0], want_layer[3], rtol=1e-4, atol=1e-6)


def test_gpt2_conv1d_projection_is_found() -> None:
    torch.manual_seed(0)
    model = tf.GPT2LMHeadModel(tf.GPT2Config(n_embd=16, n_layer=1, n_head=2, vocab_size=20,
                                             n_positions=16)).eval()  # fmt: skip
    got = measures.value_norms(model, {"input_ids": torch.randint(0, 20, (2, 5))})
    assert got["transformer.h.0.attn"].shape == (2, 2, 5, 5)
    with pytest.raises(ValueError, match="layer must be one of"):
        measures.value_norms(model, {"input_ids": torch.zeros(1, 3, dtype=torch.long)}, layer="x")


def test_grouped_query_heads_read_their_key_value_head() -> None:
    """Llama with 4 query heads sharing 2 value heads: head h uses value head h // 2."""
    torch.manual_seed(0)
    config = tf.LlamaConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=4,
                            num_key_value_heads=2, intermediate_size=48, vocab_size=50)  # fmt: skip
    model = tf.LlamaForCausalLM(config).eval()
    ids = torch.randint(0, 50, (1, 6), generator=torch.Generator().manual_seed(3))
    attn = model.model.layers[0].self_attn
    seen = {}
    handle = attn.register_forward_pre_hook(lambda m, a, kw: seen.update(x=kw["hidden_states"]),
                                            with_kwargs=True)  # fmt: skip
    model.set_attn_implementation("eager")
    with torch.no_grad():
        alpha = model(ids, output_attentions=True).attentions[0][0]  # (H, T, T)
    model.set_attn_implementation("sdpa")
    handle.remove()
    v = attn.v_proj(seen["x"][0]).view(6, 2, 8).transpose(0, 1)  # (H_kv, T, d)
    w_o = attn.o_proj.weight.view(32, 4, 8)  # (D, H, d)
    f = torch.stack([v[h // 2] @ w_o[:, h].T for h in range(4)])  # (H, T, D)
    want = alpha * f.norm(dim=-1)[:, None, :]
    got = measures.value_norms(model, {"input_ids": ids})["model.layers.0.self_attn"][0]
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-6)
