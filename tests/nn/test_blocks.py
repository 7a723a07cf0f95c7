"""Encoder/decoder layers against torch.nn.TransformerEncoderLayer / DecoderLayer."""

import pytest
import torch

from attnlab import MultiHeadAttention
from attnlab.nn.blocks import BlockConfig, DecoderLayer, EncoderLayer

D, H, FF = 32, 4, 64


def copy_common(ours, theirs):
    with torch.no_grad():
        ours.self_attn.load_state_dict(MultiHeadAttention.from_torch(theirs.self_attn).state_dict())
        for name in ("linear1", "linear2"):
            getattr(ours.ff, name).load_state_dict(getattr(theirs, name).state_dict())
        for name in ("norm1", "norm2", "norm3"):
            if hasattr(ours, name):
                getattr(ours, name).load_state_dict(getattr(theirs, name).state_dict())


@pytest.mark.parametrize("norm_first", [False, True])
@pytest.mark.parametrize("activation", ["relu", "gelu"])
def test_encoder_layer_matches_torch(norm_first, activation):
    theirs = torch.nn.TransformerEncoderLayer(
        D, H, FF, dropout=0.0, activation=activation, batch_first=True, norm_first=norm_first
    ).eval()
    ours = EncoderLayer(BlockConfig(D, H, FF, activation=activation, norm_first=norm_first)).eval()
    copy_common(ours, theirs)
    x = torch.randn(2, 7, D)
    padding = torch.zeros(2, 7, dtype=torch.bool)
    padding[1, 5:] = True  # PyTorch: True = padding
    with torch.no_grad():
        expected = theirs(x, src_key_padding_mask=padding)
        out = ours(x, attention_mask=~padding)
    real = ~padding
    torch.testing.assert_close(out[real], expected[real], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("norm_first", [False, True])
def test_decoder_layer_matches_torch(norm_first):
    theirs = torch.nn.TransformerDecoderLayer(
        D, H, FF, dropout=0.0, batch_first=True, norm_first=norm_first
    ).eval()
    ours = DecoderLayer(BlockConfig(D, H, FF, activation="relu", norm_first=norm_first)).eval()
    copy_common(ours, theirs)
    ours.cross_attn.load_state_dict(
        MultiHeadAttention.from_torch(theirs.multihead_attn).state_dict()
    )
    x, memory = torch.randn(2, 6, D), torch.randn(2, 9, D)
    mem_padding = torch.zeros(2, 9, dtype=torch.bool)
    mem_padding[0, 7:] = True
    causal = torch.nn.Transformer.generate_square_subsequent_mask(6)
    with torch.no_grad():
        expected = theirs(
            x, memory, tgt_mask=causal, tgt_is_causal=True, memory_key_padding_mask=mem_padding
        )
        out = ours(x, memory, encoder_attention_mask=~mem_padding)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)


def test_block_config_rejects_indivisible_heads():
    with pytest.raises(ValueError, match="d_model must be divisible by n_heads: 30 % 4 = 2"):
        BlockConfig(30, 4, 64)


def test_block_config_rejects_non_positive_sizes():
    with pytest.raises(ValueError, match="d_ff must be a positive integer; got 0"):
        BlockConfig(32, 4, 0)
