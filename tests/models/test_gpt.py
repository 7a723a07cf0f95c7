import pytest
import torch

from attnlab import GPT, GPTConfig, MultiHeadAttention


@pytest.fixture
def gpt():
    return GPT(GPTConfig(vocab_size=50, max_len=32, n_layers=2, n_heads=4, d_model=32)).eval()


def mean_nll_written_out(logits, targets):
    """−(1/N)·Σ log softmax(logits[b, t])[targets[b, t]] over the N positions whose target is
    not −100, in float64 with an explicit log-sum-exp: no call to a loss function."""
    total, count = 0.0, 0
    for b in range(targets.shape[0]):
        for t in range(targets.shape[1]):
            target = int(targets[b, t])
            if target == -100:
                continue
            row = logits[b, t].double()
            peak = row.max()
            log_z = peak + (row - peak).exp().sum().log()
            total -= float(row[target] - log_z)
            count += 1
    return total / count


def test_loss_is_the_mean_log_likelihood_of_the_scored_targets(gpt):
    """targets[b, t] is scored against logits[b, t] (the caller shifts, not the model);
    positions with target −100 count neither in the sum nor in the mean."""
    with torch.no_grad():  # spread the logits (≈ uniform at init) so each target matters
        gpt.lm_head.weight.mul_(10)
    ids = torch.randint(0, 50, (3, 10))
    targets = torch.randint(0, 50, (3, 10))
    targets[0, :6] = -100
    targets[2, [1, 7]] = -100
    out = gpt(ids, targets=targets)
    assert out.logits.shape == (3, 10, 50)
    expected = mean_nll_written_out(out.logits.detach(), targets)
    assert out.loss.item() == pytest.approx(expected, rel=1e-5)


def test_changing_future_tokens_never_changes_earlier_outputs(gpt):
    ids = torch.randint(0, 50, (2, 12))
    changed = ids.clone()
    changed[:, 6:] = torch.randint(0, 50, (2, 6))
    with torch.no_grad():
        a, b = gpt(ids).logits, gpt(changed).logits
    torch.testing.assert_close(a[:, :6], b[:, :6], atol=0, rtol=0)
    assert not torch.allclose(a[:, 6:], b[:, 6:])


def test_kv_cache_decoding_equals_full_recomputation(gpt):
    ids = torch.randint(0, 50, (2, 16))
    cache = gpt.new_kv_cache(2)
    with torch.no_grad():
        full = gpt(ids).logits
        steps = [gpt(ids[:, :5], kv_cache=cache).logits]
        steps += [gpt(ids[:, t : t + 1], kv_cache=cache).logits for t in range(5, 16)]
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=1e-5)


def test_generate_with_and_without_cache_agree(gpt):
    prompt = torch.randint(0, 50, (2, 4))
    with_cache = gpt.generate(prompt, 12, temperature=0)
    without = gpt.generate(prompt, 12, temperature=0, use_cache=False)
    assert torch.equal(with_cache, without) and with_cache.shape == (2, 16)


def test_sampling_is_reproducible_with_a_generator(gpt):
    prompt = torch.randint(0, 50, (1, 3))

    def sample(seed):
        g = torch.Generator().manual_seed(seed)
        return gpt.generate(prompt, 8, temperature=0.8, top_k=10, top_p=0.9, generator=g)

    assert torch.equal(sample(1), sample(1))


def test_attention_layers_are_the_public_class(gpt):
    assert isinstance(gpt.layers[1].self_attn, MultiHeadAttention)


def test_weights_are_tied(gpt):
    assert gpt.lm_head.weight is gpt.token_embedding.weight
    count = gpt.num_parameters()
    assert count.total == sum(p.numel() for p in gpt.parameters())  # shared tensor counted once
    assert "layers" in str(count)


def test_config_round_trips_through_a_dict():
    config = GPTConfig.preset("gpt-nano", vocab_size=65)
    assert GPTConfig.from_dict(config.to_dict()) == config


def test_unknown_config_field_is_named():
    with pytest.raises(ValueError, match=r"unknown GPTConfig fields: \['n_head'\]"):
        GPTConfig.from_dict({"vocab_size": 5, "n_head": 2})


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"d_model": 30, "n_heads": 4}, "d_model must be divisible by n_heads: 30 % 4 = 2"),
    ({"n_layers": 0}, "n_layers must be a positive integer; got 0"),
    ({"vocab_size": -1}, "vocab_size must be a positive integer; got -1"),
])  # fmt: skip
def test_bad_configs_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        GPTConfig(**{"vocab_size": 10, **kwargs})


def test_token_out_of_vocabulary_is_refused(gpt):
    with pytest.raises(
        ValueError, match=r"input_ids must lie in \[0, vocab_size=50\); got values from 0 to 50"
    ):
        gpt(torch.tensor([[0, 50]]))


def test_sequence_longer_than_max_len_is_refused(gpt):
    with pytest.raises(ValueError, match="input_ids is too long: 33 positions, max_len is 32"):
        gpt(torch.zeros(1, 33, dtype=torch.long))


def test_generation_past_max_len_is_refused(gpt):
    with pytest.raises(ValueError, match=r"= 40 must lie within max_len=32"):
        gpt.generate(torch.zeros(1, 8, dtype=torch.long), 32)


def test_multi_head_and_single_head_have_equal_parameter_counts():
    counts = {
        h: GPT(GPTConfig(vocab_size=20, n_layers=1, n_heads=h, d_model=32)).num_parameters().total
        for h in (1, 4, 8)
    }
    assert len(set(counts.values())) == 1


def test_shape_trace_names_every_layer_and_can_keep_one(gpt):
    from attnlab import trace_shapes

    ids = torch.randint(0, 50, (1, 6))
    with torch.no_grad(), trace_shapes(gpt, print_to=None) as everything:
        gpt(ids)
    assert [c.name for c in everything.calls] == ["layers.0.self_attn", "layers.1.self_attn"]
    with torch.no_grad(), trace_shapes(gpt, layer=1, print_to=None) as one:
        gpt(ids)
    assert [c.name for c in one.calls] == ["layers.1.self_attn"]
    assert "heads (1, 4, 6, 8)" in one.summary()


def test_sinusoidal_positions_do_not_drown_the_token_embeddings():
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=50, max_len=64, n_layers=1, n_heads=2, d_model=64,
                        positional="sinusoidal"))  # fmt: skip
    position_rms = gpt.position(64).pow(2).mean().sqrt()
    token_rms = gpt.token_embedding.weight.pow(2).mean().sqrt()
    assert 0.8 < float(position_rms / token_rms) < 1.25


def test_a_non_causal_gpt_generates_each_token_from_its_prefix_even_with_use_cache():
    torch.manual_seed(0)
    gpt = GPT(GPTConfig(vocab_size=30, max_len=24, n_layers=2, n_heads=2, d_model=16,
                        causal=False)).eval()  # fmt: skip
    with torch.no_grad():  # sharp attention, so a stale cached key changes the logits
        for p in gpt.parameters():
            p.normal_(0, 0.5)
    seen = []  # the next-token logits each generation step used
    forward = gpt.forward

    def spy(*args, **kwargs):
        out = forward(*args, **kwargs)
        seen.append(out.logits[:, -1])
        return out

    gpt.forward = spy
    prompt = torch.randint(0, 30, (2, 3))
    ids = gpt.generate(prompt, 12, temperature=0, use_cache=True)
    del gpt.forward
    with torch.no_grad():
        for step, t in enumerate(range(3, 15)):  # a cached key would be off by ~0.07 here
            torch.testing.assert_close(seen[step], gpt(ids[:, :t]).logits[:, -1])
