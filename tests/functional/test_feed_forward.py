"""The feed-forward network with its own backward, against PyTorch's modules (nn.Linear, nn.GELU,
nn.ReLU) through autograd: outputs and every gradient in float64 over random shapes, a second
backward (retain_graph), second derivatives, torch.func, autocast, meta; and that its backward
writes into the hidden layer's memory instead of allocating (rows, d_ff) tensors."""

import copy
import pickle

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

from attnlab.functional.feed_forward import feed_forward
from attnlab.nn.feed_forward import FeedForward

PEERS = {"gelu": nn.GELU(), "gelu_tanh": nn.GELU(approximate="tanh"), "relu": nn.ReLU()}


def _peer(d: int, d_ff: int, activation: str, bias: bool, dtype=torch.float64, seed=0):
    """PyTorch's own network, and its parameters (W_1, b_1, W_2, b_2; None without bias)."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(d, d_ff, bias=bias), PEERS[activation],
                        nn.Linear(d_ff, d, bias=bias)).to(dtype)  # fmt: skip
    return net, (net[0].weight, net[0].bias, net[2].weight, net[2].bias)


def _grads(y, inputs, g, **kwargs):
    wanted = [t for t in inputs if t is not None and t.requires_grad]
    return torch.autograd.grad(y, wanted, g, **kwargs)


@settings(max_examples=60, deadline=None)
@given(
    lead=st.lists(st.integers(0, 5), min_size=0, max_size=3),
    d=st.integers(1, 9),
    d_ff=st.integers(1, 20),
    activation=st.sampled_from(sorted(PEERS)),
    bias=st.booleans(),
    frozen=st.sampled_from(["none", "x", "weights", "w2"]),
    seed=st.integers(0, 2**31 - 1),
)
def test_output_and_every_gradient_equal_pytorchs_modules(lead, d, d_ff, activation, bias,
                                                          frozen, seed):  # fmt: skip
    """Any leading shape (also empty or with a 0), with and without biases, and only the
    gradients asked for (frozen input, weights or W_2 alone)."""
    net, params = _peer(d, d_ff, activation, bias, seed=seed % 1000)
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(*lead, d, generator=g, dtype=torch.float64)
    x.requires_grad_(frozen != "x")
    for p in params:
        if p is not None:
            p.requires_grad_(frozen not in ("weights", "w2") or (frozen == "w2" and p is not
                                                                 params[2]))  # fmt: skip
    if not (x.requires_grad or any(p is not None and p.requires_grad for p in params)):
        return
    y = feed_forward(x, *params, activation)
    want = net(x)
    torch.testing.assert_close(y, want, atol=1e-12, rtol=1e-12)
    grad = torch.randn(want.shape, generator=g, dtype=want.dtype)
    got = _grads(y, (x, *params), grad)
    expected = _grads(want, (x, *params), grad)
    for a, b in zip(got, expected, strict=True):
        torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("activation", sorted(PEERS))
def test_a_second_backward_recomputes_the_hidden_layer_it_wrote_over(activation):
    """The first backward writes its gradients into h's and a's memory; with retain_graph a
    second backward must not read those (it would get gradients, not activations)."""
    net, params = _peer(6, 24, activation, bias=True)
    x = torch.randn(3, 7, 6, dtype=torch.float64, requires_grad=True)
    y, want = feed_forward(x, *params, activation), net(x)
    g1, g2 = torch.randn_like(y), torch.randn_like(y)
    for grad in (g1, g2):
        last = grad is g2
        got = _grads(y, (x, *params), grad, retain_graph=not last)
        expected = _grads(want, (x, *params), grad, retain_graph=not last)
        for a, b in zip(got, expected, strict=True):
            torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)


@pytest.mark.parametrize("activation", sorted(PEERS))
@pytest.mark.parametrize("bias", [True, False])
def test_gradients_and_second_derivatives_against_finite_differences(activation, bias):
    _, params = _peer(3, 5, activation, bias)
    x = torch.randn(2, 4, 3, dtype=torch.float64, requires_grad=True)
    inputs = tuple(t for t in (x, *params) if t is not None)

    def f(*ts):
        x, w1, *rest = ts
        b1, w2, b2 = rest if bias else (None, rest[0], None)
        return feed_forward(x, w1, b1, w2, b2, activation)

    assert torch.autograd.gradcheck(f, inputs)
    assert torch.autograd.gradgradcheck(f, inputs)


def test_under_torch_func_it_is_autograds_network():
    net, params = _peer(4, 8, "gelu", bias=True)
    x = torch.randn(5, 4, dtype=torch.float64)

    def loss_of(w1, x):
        return feed_forward(x, w1, *params[1:], "gelu").square().sum()

    def peer_loss(w1, x):
        return torch.func.functional_call(net, {"0.weight": w1}, (x,)).square().sum()

    got = torch.func.grad(loss_of)(params[0].detach(), x)
    want = torch.func.grad(peer_loss)(params[0].detach(), x)
    torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)


def test_under_autocast_it_casts_as_autocast_casts_linear_layers():
    """float32 parameters and input under bfloat16 autocast: the output is bfloat16 and equal to
    PyTorch's modules under the same autocast; gradients come back in float32."""
    net, params = _peer(16, 64, "gelu", bias=True, dtype=torch.float32)
    x = torch.randn(4, 8, 16, requires_grad=True)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = feed_forward(x, *params, "gelu")
        want = net(x)
    assert y.dtype == want.dtype == torch.bfloat16
    torch.testing.assert_close(y, want, atol=0, rtol=0)
    grad = torch.randn_like(y)
    got = _grads(y, (x, *params), grad)
    expected = _grads(want, (x, *params), grad)
    for a, b in zip(got, expected, strict=True):
        assert a.dtype == torch.float32
        torch.testing.assert_close(a, b, atol=1e-2, rtol=1e-2)


def test_shapes_on_meta():
    x = torch.empty(2, 3, 8, device="meta", requires_grad=True)
    w1, w2 = (torch.empty(*s, device="meta", requires_grad=True) for s in ((32, 8), (8, 32)))
    b1, b2 = (torch.empty(n, device="meta", requires_grad=True) for n in (32, 8))
    y = feed_forward(x, w1, b1, w2, b2, "gelu_tanh")
    assert y.shape == (2, 3, 8) and y.device.type == "meta"
    grads = torch.autograd.grad(y.sum(), (x, w1, b1, w2, b2))
    assert [t.shape for t in grads] == [t.shape for t in (x, w1, b1, w2, b2)]


def test_an_unknown_activation_is_refused_before_any_work():
    x, w = torch.ones(2, 3), torch.ones(3, 3)
    with pytest.raises(ValueError, match=r"activation must be one of \['gelu', 'gelu_tanh', "
                                         r"'relu'\]; got 'swish'"):  # fmt: skip
        feed_forward(x, w, None, w, None, "swish")


def test_backward_allocates_no_tensor_of_the_hidden_layers_size():
    """The two (rows, d_ff) gradients go into the memory of h and a; autograd's backward of the
    same network allocates them afresh (the control below)."""
    rows, d, d_ff = 512, 16, 1024
    net, params = _peer(d, d_ff, "gelu", bias=True, dtype=torch.float32)
    x = torch.randn(rows, d, requires_grad=True)
    hidden_bytes = rows * d_ff * 4

    def hidden_sized_allocations(y):
        with torch.profiler.profile(profile_memory=True) as prof:
            y.backward(torch.ones_like(y))
        return sum(e.cpu_memory_usage == hidden_bytes for e in prof.events())

    assert hidden_sized_allocations(net(x)) >= 2  # the control: autograd allocates them
    assert hidden_sized_allocations(feed_forward(x, *params, "gelu")) == 0


def _through_it(y) -> bool:
    """Whether y's graph holds this module's backward."""
    nodes, seen = [y.grad_fn], set()
    while nodes:
        node = nodes.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        if type(node).__name__ == "_FeedForwardBackward":
            return True
        nodes.extend(n for n, _ in node.next_functions)
    return False


def test_the_module_trains_through_it_only_without_hidden_dropout_or_hooks():
    x = torch.randn(2, 5, 8, requires_grad=True)
    assert _through_it(FeedForward(8, 32, activation="relu")(x))
    dropping = FeedForward(8, 32, dropout=0.5)
    assert not _through_it(dropping(x))
    assert _through_it(dropping.eval()(x))
    hooked = FeedForward(8, 32)
    hooked.hook_post.register_forward_hook(lambda module, args, out: None)
    assert not _through_it(hooked(x))


def _module_and_peer(activation="gelu", bias=True):
    ff = FeedForward(6, 24, activation=activation, bias=bias).double()
    peer = nn.Sequential(nn.Linear(6, 24, bias=bias), PEERS[activation],
                         nn.Linear(24, 6, bias=bias)).double()  # fmt: skip
    state = {"0.weight": ff.linear1.weight, "2.weight": ff.linear2.weight}
    if bias:
        state |= {"0.bias": ff.linear1.bias, "2.bias": ff.linear2.bias}
    peer.load_state_dict(state)
    return ff, peer


@pytest.mark.parametrize("activation, bias", [(a, True) for a in sorted(PEERS)] + [("gelu", False)])
def test_training_steps_reuse_the_hidden_layers_memory_and_stay_exact(activation, bias):
    """In training mode each backward hands h's and a's memory back and the next forward writes
    into it; step after step, outputs and gradients equal PyTorch's modules."""
    ff, peer = _module_and_peer(activation, bias)
    pointers = []
    for step in range(3):
        x = torch.randn(4, 9, 6, dtype=torch.float64, generator=torch.Generator().manual_seed(step))
        y, want = ff(x.requires_grad_()), peer(x)
        torch.testing.assert_close(y, want, atol=1e-12, rtol=1e-12)
        grad = torch.randn_like(y)
        got = _grads(y, (x, *ff.parameters()), grad)
        expected = _grads(want, (x, *peer.parameters()), grad)
        for a, b in zip(got, expected, strict=True):
            torch.testing.assert_close(a, b, atol=1e-12, rtol=1e-12)
        assert len(ff.hidden_buffers) == 2
        pointers.append(sorted(t.data_ptr() for t in ff.hidden_buffers._free))
    assert pointers[0] == pointers[1] == pointers[2]  # the same memory every step
    ff.eval()
    assert len(ff.hidden_buffers) == 0


def test_a_retained_graph_is_exact_after_another_forward_took_the_memory():
    """retain_graph, then a second forward (which takes the handed-back memory), then the first
    graph's second backward: it recomputes its hidden layer into memory of its own."""
    ff, peer = _module_and_peer()
    x1, x2 = (torch.randn(3, 5, 6, dtype=torch.float64, requires_grad=True) for _ in range(2))
    y1 = ff(x1)
    _grads(y1, (x1,), torch.ones_like(y1), retain_graph=True)
    y2 = ff(x2)
    (got,) = _grads(y1, (x1,), torch.ones_like(y1))
    (want,) = _grads(peer(x1), (x1,), torch.ones_like(y1))
    torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)
    (got,) = _grads(y2, (x2,), torch.ones_like(y2))
    (want,) = _grads(peer(x2), (x2,), torch.ones_like(y2))
    torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)


def test_batches_of_changing_length_keep_at_most_two_tensors():
    """Padded batches change length step by step: only the last length's memory is kept."""
    ff, peer = _module_and_peer()
    for t in (5, 9, 5, 13, 2):
        x = torch.randn(2, t, 6, dtype=torch.float64, requires_grad=True)
        (got,) = _grads(ff(x), (x,), torch.ones(2, t, 6, dtype=torch.float64))
        (want,) = _grads(peer(x), (x,), torch.ones(2, t, 6, dtype=torch.float64))
        torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)
        assert len(ff.hidden_buffers) == 2
        assert all(b.shape == (2 * t, 24) for b in ff.hidden_buffers._free)


def test_copies_and_conversions_do_not_carry_the_kept_memory():
    ff, _ = _module_and_peer()
    x = torch.randn(2, 5, 6, dtype=torch.float64, requires_grad=True)
    ff(x).sum().backward()
    assert len(ff.hidden_buffers) == 2
    assert len(copy.deepcopy(ff).hidden_buffers) == 0
    assert len(pickle.loads(pickle.dumps(ff)).hidden_buffers) == 0
    assert "hidden_buffers" not in "".join(ff.state_dict())
    ff.float()
    assert len(ff.hidden_buffers) == 0


@pytest.mark.filterwarnings("ignore:`torch.jit.script` is deprecated:DeprecationWarning")
def test_forward_mode_ad_goes_through_autograds_operations():
    """A Function with only a backward has no jvp: dual tensors take autograd's operations."""
    ff, peer = _module_and_peer()
    x, tangent = torch.randn(3, 6, dtype=torch.float64), torch.randn(3, 6, dtype=torch.float64)
    with torch.autograd.forward_ad.dual_level():
        got = torch.autograd.forward_ad.unpack_dual(ff(torch.autograd.forward_ad.make_dual(
            x, tangent))).tangent  # fmt: skip
        want = torch.autograd.forward_ad.unpack_dual(peer(torch.autograd.forward_ad.make_dual(
            x, tangent))).tangent  # fmt: skip
    torch.testing.assert_close(got, want, atol=1e-12, rtol=1e-12)


def test_two_forwards_before_one_backward_are_exact():
    """Gradient accumulation written as one backward of two losses: the second forward cannot
    take memory the first still holds."""
    ff, peer = _module_and_peer()
    x1, x2 = (torch.randn(2, 7, 6, dtype=torch.float64, requires_grad=True) for _ in range(2))
    (ff(x1).square().sum() + ff(x2).sum()).backward()
    (peer(x1).square().sum() + peer(x2).sum()).backward()
    for a, b in zip(ff.parameters(), peer.parameters(), strict=True):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-12, rtol=1e-12)
