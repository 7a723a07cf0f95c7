"""attnlab: the attention mechanism — build it, run it fast, train models with it, see it.

Public API (each name documented where it is defined):

* :func:`scaled_dot_product_attention` — softmax(QKᵀ/√d_k)·V with masks, exact weights on demand
* :mod:`attnlab.masks` — causal, sliding-window and padding masks (True = may attend)
* :class:`MultiHeadAttention` — batch-first multi-head / grouped-query attention
* :func:`backend` — select the attention backend (``"auto"``, ``"flash-cpu"``, ``"blocked"``,
  ``"reference"``, ``"portable"``) for a block of code
* :class:`AttentionBias` — the one description of masks, causal rule, padding, ALiBi, softcap
* :mod:`attnlab.hooks` — named hook points: :func:`run_with_cache`, :func:`run_with_hooks`,
  :func:`ablate_heads`
"""

from attnlab import hooks, masks
from attnlab.functional.attention import AttentionResult, scaled_dot_product_attention
from attnlab.functional.backends import BACKENDS, backend
from attnlab.functional.bias import AttentionBias
from attnlab.hooks import HookPoint, ablate_heads, run_with_cache, run_with_hooks
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
    "BACKENDS",
    "GPT",
    "AttentionBias",
    "AttentionMap",
    "AttentionResult",
    "Encoder",
    "EncoderConfig",
    "EncoderDecoder",
    "EncoderDecoderConfig",
    "GPTConfig",
    "HookPoint",
    "KVCache",
    "LayerKVCache",
    "ModelOutput",
    "MultiHeadAttention",
    "__version__",
    "ablate_heads",
    "backend",
    "capture",
    "check_causal",
    "hooks",
    "inspect",
    "masks",
    "run_with_cache",
    "run_with_hooks",
    "scaled_dot_product_attention",
    "trace_shapes",
]
