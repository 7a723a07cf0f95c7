"""Every bad input to the public API is refused before any work is done, with an error that
names the argument and states what was expected and what was given.

One table: (call, exception, fragments of the message). Each call runs under a dispatch mode
that records every aten operator, so a check that only fires after the matrix products (or the
projections of a layer) fails here even if its message is right. Inputs are built outside the
recorded call. Bad inputs that are not caught today are in the table too, marked xfail(strict):
the gaps, for the lead to close.
"""

import inspect
import math

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode

from attnlab import MultiHeadAttention, capture, masks, scaled_dot_product_attention
from attnlab.functional.positional import apply_rope

# Operators that mean the work has started: products, softmax, attention kernels.
WORK = ("mm", "bmm", "addmm", "baddbmm", "matmul", "linear", "softmax", "_softmax", "attention")


class RecordOps(TorchDispatchMode):
    def __init__(self):
        super().__init__()
        self.ops = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops.append(func.overloadpacket.__name__)
        return func(*args, **(kwargs or {}))


def work_done(ops):
    return [op for op in ops if op.lstrip("_") in WORK or "attention" in op]


def gap(reason):
    return pytest.mark.xfail(strict=True, reason=f"not caught today: {reason}")


sdpa = scaled_dot_product_attention
q, k, v = torch.randn(2, 4, 64), torch.randn(2, 5, 64), torch.randn(2, 5, 64)
mha = MultiHeadAttention(8, 2).eval()
x = torch.randn(1, 4, 8)


def padding_argument():
    """The layer's (B, S) key-padding argument, under its current or its former name."""
    params = inspect.signature(MultiHeadAttention.forward).parameters
    return next(n for n in ("attention_mask", "key_padding_mask") if n in params)


def captured_map():
    model = torch.nn.Module()
    model.attn = MultiHeadAttention(8, 2).eval()
    with torch.no_grad(), capture(model) as maps:
        model.attn(torch.randn(1, 5, 8))
    return maps["attn"]  # shape (1, 2, 5, 5)


amap = captured_map()
PAD = padding_argument()

# (id, call, exception, fragments that must all appear in the message)
CASES = [
    # --- scaled_dot_product_attention ---------------------------------------------------------
    ("sdpa d_k", lambda: sdpa(q, k[..., :32], v), ValueError, ["d_k", "q has 64", "k has 32"]),
    ("sdpa Lk", lambda: sdpa(q, k, v[:, :3]), ValueError, ["Lk", "k has 5", "v has 3"]),
    ("sdpa rank", lambda: sdpa(torch.randn(64), k, v), ValueError, ["q", "2 dimensions", "(64,)"]),
    ("sdpa batch", lambda: sdpa(q, k[:1].expand(3, 5, 64), v[:1].expand(3, 5, 64)),
     ValueError, ["broadcast", "q (2, 4, 64)", "k (3, 5, 64)"]),
    ("sdpa dtypes", lambda: sdpa(q, k.double(), v), ValueError,
     ["dtype", "q torch.float32", "k torch.float64"]),
    ("sdpa int q", lambda: sdpa(q.long(), k.long(), v.long()), ValueError,
     ["q", "floating-point", "torch.int64"]),
    ("sdpa mask shape", lambda: sdpa(q, k, v, torch.ones(4, 4, dtype=torch.bool)), ValueError,
     ["mask", "(4, 4)", "(2, 4, 5)"]),
    ("sdpa mask dtype", lambda: sdpa(q, k, v, torch.ones(4, 5, dtype=torch.int32)), ValueError,
     ["mask", "bool", "torch.int32"]),
    ("sdpa mask 0-d", lambda: sdpa(q, k, v, torch.tensor(True)), ValueError, ["mask", "()"]),
    ("sdpa scale 0", lambda: sdpa(q, k, v, scale=0.0), ValueError, ["scale", "positive", "0.0"]),
    ("sdpa scale -1", lambda: sdpa(q, k, v, scale=-1.0), ValueError, ["scale", "-1.0"]),
    ("sdpa scale inf", lambda: sdpa(q, k, v, scale=math.inf), ValueError, ["scale", "inf"]),
    ("sdpa scale nan", lambda: sdpa(q, k, v, scale=math.nan), ValueError, ["scale", "nan"]),
    ("sdpa dropout -", lambda: sdpa(q, k, v, dropout=-0.1), ValueError,
     ["dropout", "[0, 1)", "-0.1"]),
    ("sdpa dropout 1", lambda: sdpa(q, k, v, dropout=1.0), ValueError, ["dropout", "1.0"]),
    ("sdpa dropout nan", lambda: sdpa(q, k, v, dropout=math.nan), ValueError, ["dropout", "nan"]),
    ("sdpa list q", lambda: sdpa([[1.0]], k, v), TypeError, ["q", "torch.Tensor", "list"]),
    ("sdpa list mask", lambda: sdpa(q, k, v, [[True]]), TypeError, ["mask", "list"]),
    pytest.param(
        "sdpa k device", lambda: sdpa(q, k.to("meta"), v), ValueError,
        ["q, k and v must be on one device", "q is on cpu", "k is on meta", "v is on cpu"],
    ),
    ("sdpa k device weights", lambda: sdpa(q, k.to("meta"), v, need_weights=True), ValueError,
     ["k is on meta"]),
    ("sdpa v device dtype", lambda: sdpa(q, k, v.to("meta", torch.float64)), ValueError,
     ["v is on meta"]),
    ("sdpa padding device",
     lambda: sdpa(q, k, v, attention_mask=torch.ones(2, 5, dtype=torch.bool, device="meta")),
     ValueError, ["attention_mask is on meta", "q is on cpu"]),
    ("sdpa alibi device", lambda: sdpa(q, k, v, alibi_slopes=torch.ones(2, device="meta")),
     ValueError, ["alibi_slopes is on meta", "q is on cpu"]),
    ("sdpa alibi int", lambda: sdpa(q, k, v, alibi_slopes=torch.ones(2, dtype=torch.long)),
     ValueError, ["alibi_slopes", "floating point", "torch.int64"]),
    pytest.param(
        "sdpa mask device", lambda: sdpa(q, k, v, torch.ones(4, 5, dtype=torch.bool,
                                                              device="meta")),
        ValueError, ["mask", "device", "meta"],
    ),
    pytest.param(
        "sdpa scale str", lambda: sdpa(q, k, v, scale="0.5"), (TypeError, ValueError),
        ["scale", "'0.5'"],
    ),
    pytest.param(
        "sdpa scale bool", lambda: sdpa(q, k, v, scale=True), (TypeError, ValueError),
        ["scale", "True"],
    ),
    pytest.param(
        "sdpa causal str", lambda: sdpa(q, k, v, causal="no"), (TypeError, ValueError),
        ["causal", "'no'"],
    ),
    # --- MultiHeadAttention(...) ---------------------------------------------------------------
    ("mha d_model 0", lambda: MultiHeadAttention(0, 1), ValueError,
     ["d_model", "positive integer", "0"]),
    ("mha d_model float", lambda: MultiHeadAttention(8.0, 2), ValueError, ["d_model", "8.0"]),
    ("mha n_heads -2", lambda: MultiHeadAttention(8, -2), ValueError, ["n_heads", "-2"]),
    ("mha divisible", lambda: MultiHeadAttention(10, 4), ValueError,
     ["d_model", "divisible by n_heads", "10 % 4 = 2"]),
    ("mha n_kv_heads", lambda: MultiHeadAttention(8, 4, n_kv_heads=3), ValueError,
     ["n_kv_heads", "n_heads=4", "3"]),
    ("mha dropout", lambda: MultiHeadAttention(8, 2, dropout=1.0), ValueError,
     ["dropout", "[0, 1)", "1.0"]),
    ("mha dropout -", lambda: MultiHeadAttention(8, 2, dropout=-0.5), ValueError,
     ["dropout", "-0.5"]),
    pytest.param(
        "mha n_heads bool", lambda: MultiHeadAttention(8, True), ValueError, ["n_heads", "True"],
    ),
    pytest.param(
        "mha scale -1", lambda: MultiHeadAttention(8, 2, scale=-1.0), ValueError,
        ["scale", "-1.0"],
    ),
    pytest.param(
        "mha scale nan", lambda: MultiHeadAttention(8, 2, scale=math.nan), ValueError,
        ["scale", "nan"],
    ),
    pytest.param(
        "mha kdim 0", lambda: MultiHeadAttention(8, 2, kdim=0), ValueError, ["kdim", "0"],
        marks=pytest.mark.filterwarnings("ignore:Initializing zero-element tensors"),
    ),
    pytest.param(
        "mha vdim -3", lambda: MultiHeadAttention(8, 2, vdim=-3), ValueError, ["vdim", "-3"],
    ),
    # --- MultiHeadAttention forward -------------------------------------------------------------
    ("mha 2-d query", lambda: mha(torch.randn(4, 8)), ValueError,
     ["query", "(B, T, 8)", "(4, 8)"]),
    ("mha query width", lambda: mha(torch.randn(1, 4, 6)), ValueError,
     ["query", "8", "(1, 4, 6)"]),
    ("mha batch", lambda: mha(x, torch.randn(2, 4, 8)), ValueError,
     ["batch", "query has 1", "key has 2"]),
    ("mha query device", lambda: mha(x.to("meta")), ValueError,
     ["query is on meta", "q_proj.weight is on cpu"]),
    ("mha key device", lambda: mha(x, x.to("meta")), ValueError,
     ["query is on cpu", "key is on meta", "q_proj.weight is on cpu"]),
    ("mha padding device", lambda: mha(x, **{PAD: torch.ones(1, 4, dtype=torch.bool,
                                                              device="meta")}),
     ValueError, [PAD, "is on meta"]),
    ("mha mask device", lambda: mha(x, mask=torch.ones(4, 4, dtype=torch.bool, device="meta")),
     ValueError, ["mask is on meta", "query is on cpu"]),
    ("mha key/value S", lambda: mha(x, torch.randn(1, 4, 8), torch.randn(1, 5, 8)), ValueError,
     ["key (1, 4, 8)", "value (1, 5, 8)"]),
    pytest.param(
        "mha padding float", lambda: mha(x, **{PAD: torch.ones(1, 4)}), ValueError,
        [PAD, "bool", "torch.float32"],
    ),
    pytest.param(
        "mha padding shape", lambda: mha(x, **{PAD: torch.ones(1, 3, dtype=torch.bool)}),
        ValueError, [PAD, "(1, 4)", "(1, 3)"],
    ),
    pytest.param(
        "mha mask shape", lambda: mha(x, mask=torch.ones(3, 3, dtype=torch.bool)), ValueError,
        ["mask", "(3, 3)"],
    ),
    pytest.param(
        "mha float64 query", lambda: mha(x.double()), ValueError,
        ["query", "torch.float64", "torch.float32"],
    ),
    pytest.param(
        "mha int query", lambda: mha(x.long()), ValueError, ["query", "torch.int64"],
    ),
    # --- attnlab.masks ------------------------------------------------------------------------
    ("causal -1", lambda: masks.causal(-1), ValueError, ["lq=-1", "non-negative"]),
    ("sliding window 0", lambda: masks.sliding_window(4, window=0), ValueError,
     ["window", "positive", "0"]),
    ("lengths 2-d", lambda: masks.padding_from_lengths([[1, 2]]), ValueError,
     ["lengths", "1-D", "(1, 2)"]),
    ("lengths > max_len", lambda: masks.padding_from_lengths([5, 2], 3), ValueError,
     ["lengths", "max_len=3", "max 5"]),
    ("lengths < 0", lambda: masks.padding_from_lengths([-1, 2], 3), ValueError,
     ["lengths", "min -1"]),
    ("key padding 3-d", lambda: masks.from_key_padding(torch.ones(1, 2, 3, dtype=torch.bool)),
     ValueError, ["attention_mask", "(B, Lk)", "(1, 2, 3)"]),
    ("key padding float", lambda: masks.from_key_padding(torch.ones(1, 2)), ValueError,
     ["attention_mask", "bool", "torch.float32"]),
    ("describe 1-d", lambda: masks.describe(torch.ones(3, dtype=torch.bool)), ValueError,
     ["mask", "2 dimensions", "(3,)"]),
    pytest.param(
        "causal float", lambda: masks.causal(2.5), ValueError, ["lq", "2.5"],
    ),
    pytest.param(
        "lengths float", lambda: masks.padding_from_lengths([1.5, 2.0], 3), ValueError,
        ["lengths", "1.5"],
    ),
    pytest.param(
        "max_len -3", lambda: masks.padding_from_lengths([], -3), ValueError, ["max_len", "-3"],
    ),
    pytest.param(
        "masked_out int", lambda: masks.from_masked_out(torch.ones(2, 2, dtype=torch.long)),
        ValueError, ["masked_out", "torch.int64"],
    ),
    pytest.param(
        "combine shapes",
        lambda: masks.combine(torch.ones(2, 3, dtype=torch.bool), torch.ones(4, 5, dtype=torch.bool)),
        ValueError, ["(2, 3)", "(4, 5)"],
    ),
    pytest.param(
        "combine int", lambda: masks.combine(torch.ones(2, 3, dtype=torch.long)), ValueError,
        ["torch.int64"],
    ),
    ("combine devices", lambda: masks.combine(torch.ones(2, 2, dtype=torch.bool),
                                              torch.ones(2, 2, dtype=torch.bool, device="meta")),
     ValueError, ["mask 0 is on cpu", "mask 1 is on meta"]),
    ("lengths meta", lambda: masks.padding_from_lengths(torch.ones(2, device="meta")),
     ValueError, ["lengths", "meta"]),
    ("describe meta", lambda: masks.describe(torch.ones(2, 2, dtype=torch.bool, device="meta")),
     ValueError, ["mask", "meta"]),
    ("describe int", lambda: masks.describe(torch.ones(2, 2, dtype=torch.long)), ValueError,
     ["mask", "bool", "torch.int64"]),
    ("rope positions device", lambda: apply_rope(q, torch.arange(4, device="meta")), ValueError,
     ["x is on cpu", "positions is on meta"]),
    ("rope int x", lambda: apply_rope(q.long(), torch.arange(4)), ValueError,
     ["x", "floating-point", "torch.int64"]),
    # --- AttentionMap slicing -----------------------------------------------------------------
    ("map rows < 0", lambda: amap.rows(-1, 2), ValueError, ["query rows", "[0, 5]", "[-1, 2)"]),
    ("map rows > Lq", lambda: amap.rows(0, 9), ValueError, ["query rows", "[0, 9)"]),
    ("map rows reversed", lambda: amap.rows(3, 2), ValueError, ["query rows", "[3, 2)"]),
    ("map head", lambda: amap.head(2), ValueError, ["head index", "[0, 2)", "got 2"]),
    ("map head -3", lambda: amap.head(-3), ValueError, ["head index", "got -3"]),
    ("map query", lambda: amap.query(5), ValueError, ["query index", "[0, 5)", "got 5"]),
    ("map dense", lambda: amap.dense(max_bytes=10), ValueError, ["max_bytes", "(1, 2, 5, 5)"]),
    pytest.param(
        "map heads slice", lambda: amap.rows(heads=slice(0, 5)), ValueError, ["head", "0:5"],
    ),
    pytest.param(
        "map head float", lambda: amap.head(1.0), ValueError, ["head", "1.0"],
    ),
    pytest.param(
        "map topk 0", lambda: amap.topk(0), ValueError, ["k", "0"],
    ),
    pytest.param(
        "map topk -1", lambda: amap.topk(-1), ValueError, ["k", "-1"],
    ),
    pytest.param(
        "map pooled 0", lambda: amap.pooled(0), ValueError, ["size", "0"],
    ),
    pytest.param(
        "map pooled -2", lambda: amap.pooled(-2), ValueError, ["size", "-2"],
    ),
]  # fmt: skip


def case_id(case):
    return case.values[0] if hasattr(case, "values") else case[0]


@pytest.mark.parametrize(("name", "call", "error", "fragments"), CASES, ids=map(case_id, CASES))
def test_bad_input_is_refused_before_any_work_with_a_message_naming_it(
    name, call, error, fragments
):
    record = RecordOps()
    with pytest.raises(error) as raised, torch.no_grad(), record:
        call()
    message = str(raised.value)
    missing = [f for f in fragments if f not in message]
    assert not missing, f"{name}: {missing} not in {message!r}"
    assert not work_done(record.ops), f"{name}: work ran before the error: {record.ops}"


def test_a_bad_mask_on_huge_inputs_is_refused_without_computing_anything():
    """Broadcast views of 2²⁰ queries and keys cost no memory; attending over them would
    take 2⁴⁰ products per head, so only a check that runs first can answer at once."""
    n = 2**20
    big_q = torch.zeros(1, 1, 1, 8).expand(2, 4, n, 8)
    big_k = torch.zeros(1, 1, 1, 8).expand(2, 4, n, 8)
    bad = torch.ones(3, n, dtype=torch.bool)
    record = RecordOps()
    with pytest.raises(ValueError, match=r"mask of shape \(3, 1048576\)"), record:
        sdpa(big_q, big_k, big_k, bad, need_weights=True)
    assert not work_done(record.ops)
