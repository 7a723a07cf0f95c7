"""attnlab: the attention mechanism — build it, run it fast, train models with it, see it.

Public API (each name documented where it is defined):

* :func:`scaled_dot_product_attention` — softmax(QKᵀ/√d_k)·V with masks, exact weights on demand
* :mod:`attnlab.masks` — causal, sliding-window and padding masks (True = may attend)
* :class:`MultiHeadAttention` — batch-first multi-head / grouped-query attention
"""

from attnlab import masks
from attnlab.functional.attention import AttentionResult, scaled_dot_product_attention
from attnlab.inspection.attention_map import AttentionMap
from attnlab.inspection.capture import capture
from attnlab.inspection.report import inspect
from attnlab.models.checks import check_causal
from attnlab.models.config import EncoderConfig, EncoderDecoderConfig, GPTConfig, ModelOutput
from attnlab.models.encoder import Encoder
from attnlab.models.encoder_decoder import EncoderDecoder
from attnlab.models.gpt import GPT
from attnlab.nn.attention import MultiHeadAttention
from attnlab.nn.kv_cache import KVCache, LayerKVCache
from attnlab.trace import trace_shapes

__version__ = "0.1.0"

__all__ = [
    "GPT",
    "AttentionMap",
    "AttentionResult",
    "Encoder",
    "EncoderConfig",
    "EncoderDecoder",
    "EncoderDecoderConfig",
    "GPTConfig",
    "KVCache",
    "LayerKVCache",
    "ModelOutput",
    "MultiHeadAttention",
    "__version__",
    "capture",
    "check_causal",
    "inspect",
    "masks",
    "scaled_dot_product_attention",
    "trace_shapes",
]
