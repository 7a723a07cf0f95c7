"""Tiny random-weight Hugging Face models of the architectures capture supports (no downloads).

Each entry builds a model of about 2 layers, hidden 64, 4 heads (2 key/value heads where the
architecture has grouped-query attention), in eval mode, with a fixed seed."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import transformers as tf

SMALL = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96)
SEQ2SEQ = dict(
    vocab_size=97,
    d_model=64,
    encoder_layers=2,
    decoder_layers=2,
    encoder_attention_heads=4,
    decoder_attention_heads=4,
    encoder_ffn_dim=96,
    decoder_ffn_dim=96,
)  # BART, Marian, Whisper
DECODER = dict(SMALL, vocab_size=97, max_position_embeddings=128, num_key_value_heads=2)


@dataclass(frozen=True)
class Arch:
    name: str
    build: Callable[[], torch.nn.Module]
    kind: str  # "decoder", "encoder", "seq2seq", "vision"
    left_padding: bool = True  # padded batches make sense (decoders: left; encoders: right)


def _make(config_cls, model_cls, **kw) -> Callable[[], torch.nn.Module]:
    def build() -> torch.nn.Module:
        torch.manual_seed(0)
        config = config_cls(**kw)
        return model_cls(config).eval()

    return build


ZOO: dict[str, Arch] = {
    "llama": Arch("llama", _make(tf.LlamaConfig, tf.LlamaForCausalLM, **DECODER), "decoder"),
    "mistral": Arch(
        "mistral",
        _make(tf.MistralConfig, tf.MistralForCausalLM, sliding_window=5, **DECODER),
        "decoder",
    ),
    "qwen2": Arch("qwen2", _make(tf.Qwen2Config, tf.Qwen2ForCausalLM, **DECODER), "decoder"),
    "gemma2": Arch(
        "gemma2",
        _make(
            tf.Gemma2Config,
            tf.Gemma2ForCausalLM,
            head_dim=16,
            sliding_window=5,
            attn_logit_softcapping=0.5,
            query_pre_attn_scalar=1,
            final_logit_softcapping=30.0,
            **DECODER,
        ),
        "decoder",
    ),
    "phi3": Arch(
        "phi3", _make(tf.Phi3Config, tf.Phi3ForCausalLM, pad_token_id=0, **DECODER), "decoder"
    ),
    "gpt_neox": Arch(
        "gpt_neox",
        _make(
            tf.GPTNeoXConfig,
            tf.GPTNeoXForCausalLM,
            **{k: v for k, v in DECODER.items() if k != "num_key_value_heads"},
        ),
        "decoder",
    ),
    "gpt_oss": Arch(
        "gpt_oss",
        _make(
            tf.GptOssConfig,
            tf.GptOssForCausalLM,
            head_dim=16,
            num_local_experts=4,
            num_experts_per_tok=2,
            sliding_window=5,
            **DECODER,
        ),
        "decoder",
    ),
    "gpt2": Arch(
        "gpt2",
        _make(
            tf.GPT2Config,
            tf.GPT2LMHeadModel,
            n_embd=64,
            n_layer=2,
            n_head=4,
            vocab_size=97,
            n_positions=128,
        ),
        "decoder",
    ),
    "bert": Arch("bert", _make(tf.BertConfig, tf.BertModel, vocab_size=97, **SMALL), "encoder"),
    "roberta": Arch(
        "roberta",
        _make(tf.RobertaConfig, tf.RobertaModel, vocab_size=97, pad_token_id=1, **SMALL),
        "encoder",
    ),
    "bart": Arch(
        "bart",
        _make(
            tf.BartConfig,
            tf.BartForConditionalGeneration,
            **SEQ2SEQ,
            max_position_embeddings=128,
        ),
        "seq2seq",
    ),
    "marian": Arch(
        "marian",
        _make(
            tf.MarianConfig,
            tf.MarianMTModel,
            **SEQ2SEQ,
            max_position_embeddings=128,
            pad_token_id=96,
            decoder_start_token_id=96,
        ),
        "seq2seq",
    ),
    "t5": Arch(
        "t5",
        _make(
            tf.T5Config,
            tf.T5ForConditionalGeneration,
            vocab_size=97,
            d_model=64,
            d_kv=16,
            d_ff=96,
            num_layers=2,
            num_heads=4,
            relative_attention_num_buckets=8,
            decoder_start_token_id=0,
            pad_token_id=0,
            eos_token_id=1,
        ),
        "seq2seq",
    ),
    "whisper": Arch(
        "whisper",
        _make(
            tf.WhisperConfig,
            tf.WhisperForConditionalGeneration,
            **SEQ2SEQ,
            num_mel_bins=8,
            max_source_positions=16,
            max_target_positions=64,
            pad_token_id=0,
            decoder_start_token_id=1,
            eos_token_id=2,
            bos_token_id=1,
            suppress_tokens=None,
            begin_suppress_tokens=None,
        ),
        "seq2seq",
        left_padding=False,
    ),
    "vit": Arch(
        "vit",
        _make(tf.ViTConfig, tf.ViTModel, image_size=16, patch_size=4, num_channels=3, **SMALL),
        "vision",
        left_padding=False,
    ),
}
