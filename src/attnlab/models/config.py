"""Model configurations (frozen, validated on construction) and model outputs."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

from torch import Tensor

from attnlab.nn.blocks import BlockConfig

__all__ = ["EncoderConfig", "EncoderDecoderConfig", "GPTConfig", "ModelOutput"]


class ModelOutput(NamedTuple):
    """What GPT and EncoderDecoder return. The attention fields are filled only when the model
    is called with ``need_weights=True`` (Hugging Face's ``output_attentions``): one
    (B, H, T, S) tensor per layer, in layer order, with Hugging Face's field names."""

    logits: Tensor  # (B, T, V)
    loss: Tensor | None  # mean cross-entropy over targets != -100, when targets are given
    attentions: tuple[Tensor, ...] | None = None  # GPT: self-attention, (B, H, T, T_total)
    encoder_attentions: tuple[Tensor, ...] | None = None  # EncoderDecoder: (B, H, S, S)
    decoder_attentions: tuple[Tensor, ...] | None = None  # EncoderDecoder: (B, H, T, T)
    cross_attentions: tuple[Tensor, ...] | None = None  # EncoderDecoder: (B, H, T, S)


def _positive(config: Any, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if not isinstance(value, int) or value <= 0:
            raise ValueError(f"{name} must be a positive integer; got {value!r}")


# Fields renamed since checkpoints were first written: old name → new name. Configs on users'
# disks still say the old one; from_dict reads it as the new.
RENAMED_FIELDS = {"tie_output": "tie_weights"}


class _ModelConfig:
    """Shared by the model configs: (de)serialisation and the per-layer :class:`BlockConfig`."""

    # Fields a config class may lack, with the value its model always uses.
    norm_first: bool
    bias: bool
    d_ff: int | None

    def block(self) -> BlockConfig:
        """The configuration every layer of the model is built from (d_ff None → 4·D)."""
        c: Any = self
        return BlockConfig(
            c.d_model, c.n_heads, c.d_ff or 4 * c.d_model, dropout=c.dropout,
            activation=c.activation, norm_first=c.norm_first, layer_norm_eps=c.layer_norm_eps,
            bias=c.bias,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]

    @classmethod
    def from_dict(cls, data: dict[str, Any]):  # type: ignore[no-untyped-def]
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        data = dict(data)
        for old, new in RENAMED_FIELDS.items():
            if old in data and new in known:
                if new in data and data[new] != data[old]:
                    raise ValueError(
                        f"{cls.__name__} data gives both {old}={data[old]!r} (the old name) and "
                        f"{new}={data[new]!r}; expected one of them"
                    )
                data[new] = data.pop(old)
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown {cls.__name__} fields: {unknown}; known: {sorted(known)}")
        return cls(**data)


@dataclass(frozen=True)
class GPTConfig(_ModelConfig):
    vocab_size: int  # V, token ids lie in [0, V)
    max_len: int = 256  # longest sequence (positional table size)
    n_layers: int = 6  # decoder blocks
    n_heads: int = 6  # attention heads per block
    d_model: int = 384  # model width D
    d_ff: int | None = None  # feed-forward width; default 4·D
    dropout: float = 0.0  # dropout on embeddings, attention weights and sublayer outputs
    bias: bool = True  # biases in linear layers
    tie_weights: bool = True  # output projection shares the token embedding matrix
    activation: str = "gelu_tanh"  # GPT-2's gelu
    positional: str = "learned"  # "learned" (GPT-2) or "sinusoidal"
    layer_norm_eps: float = 1e-5
    # False removes the causal mask, so every position reads the whole sequence, future included:
    # only for the masking experiment (attnlab.experiments.masking), never for a real model.
    causal: bool = True

    def __post_init__(self) -> None:
        _positive(self, "vocab_size", "max_len", "n_layers", "n_heads", "d_model")
        if self.positional not in ("learned", "sinusoidal"):
            raise ValueError(
                f"positional must be 'learned' or 'sinusoidal'; got {self.positional!r}"
            )
        self.block()  # validates D % H, dropout, activation

    norm_first: ClassVar[bool] = True  # GPT-2's pre-norm blocks: x + f(LayerNorm(x))

    @classmethod
    def preset(cls, name: str, vocab_size: int) -> GPTConfig:
        """Named sizes: gpt-nano (3×48, 3 heads), gpt-micro (4×128, 4 heads), char-small
        (6×384, 6 heads, context 256: the common character-level configuration)."""
        presets = {
            "gpt-nano": {"n_layers": 3, "n_heads": 3, "d_model": 48, "max_len": 128},
            "gpt-micro": {"n_layers": 4, "n_heads": 4, "d_model": 128, "max_len": 128},
            "char-small": {"n_layers": 6, "n_heads": 6, "d_model": 384, "max_len": 256},
        }
        if name not in presets:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(presets)}")
        return cls(vocab_size=vocab_size, **presets[name])


@dataclass(frozen=True)
class EncoderConfig(_ModelConfig):
    vocab_size: int  # V
    max_len: int = 512  # positional table size
    n_layers: int = 6
    n_heads: int = 12
    d_model: int = 384
    d_ff: int = 1536
    type_vocab_size: int = 2  # segment (token type) embeddings, BERT-style; 0 for none
    dropout: float = 0.0
    activation: str = "gelu"  # BERT uses exact gelu
    norm_first: bool = False  # BERT is post-norm
    layer_norm_eps: float = 1e-12  # BERT's
    pad_token_id: int = 0

    def __post_init__(self) -> None:
        _positive(self, "vocab_size", "max_len", "n_layers", "n_heads", "d_model", "d_ff")
        self.block()

    bias: ClassVar[bool] = True  # BERT has biases in every projection


@dataclass(frozen=True)
class EncoderDecoderConfig(_ModelConfig):
    src_vocab_size: int  # source vocabulary
    tgt_vocab_size: int  # target vocabulary
    max_len: int = 128  # longest source or target sequence
    n_encoder_layers: int = 3
    n_decoder_layers: int = 3
    n_heads: int = 4
    d_model: int = 256
    d_ff: int = 1024
    dropout: float = 0.1
    activation: str = "relu"  # the original Transformer's
    norm_first: bool = False  # post-norm: LayerNorm(x + Sublayer(x)), as in the paper
    tie_weights: bool = True  # output projection shares the target embedding (was tie_output)
    layer_norm_eps: float = 1e-5

    def __post_init__(self) -> None:
        _positive(
            self, "src_vocab_size", "tgt_vocab_size", "max_len", "n_encoder_layers",
            "n_decoder_layers", "n_heads", "d_model", "d_ff",
        )  # fmt: skip
        self.block()

    bias: ClassVar[bool] = True  # biases in every projection, as in the paper's code
