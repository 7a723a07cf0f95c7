"""How many links per token a payload keeps: all for short texts, the strongest for long ones,
fewer past 2,048 tokens so a 4,096-token page stays under 10 MB."""

import pytest

from attnlab.viz.payload import LINK_BUDGET, _links_kept


@pytest.mark.parametrize(("queries", "keys", "kept"), [
    (10, 10, 10), (64, 64, 64), (65, 65, 8), (2048, 2048, 8), (4096, 4096, 4), (8192, 8192, 2),
    (100_000, 100_000, 2), (1, 5000, 8),
])  # fmt: skip
def test_links_kept(queries, keys, kept):
    assert _links_kept(queries, keys, 8) == kept
    assert queries * kept <= max(LINK_BUDGET, 2 * queries, 8 * 2048)


@pytest.mark.parametrize(
    ("lq", "lk", "pool", "key_pool"), [(301, 502, 3, 4), (64, 64, 1, 1), (131, 7, 2, 1)]
)
def test_one_pass_gives_the_block_means_and_strongest_links_of_the_map(
    lq, lk, pool, key_pool, monkeypatch
):
    import torch

    import attnlab.viz.payload as payload

    monkeypatch.setattr(payload, "_TILE_BYTES", 2 * lk * 4 * 7)  # a few rows per tile

    from attnlab.inspection.attention_map import AttentionMap
    from attnlab.viz.payload import _block_means, _pooled_and_top

    torch.manual_seed(0)
    q, k = torch.randn(1, 2, lq, 8), torch.randn(1, 2, lk, 8)
    lse = (q @ k.transpose(-1, -2) * 0.5).logsumexp(-1)
    amap = AttentionMap(q, k, lse, 0.5)
    dense = amap.dense()[0]
    means, w, i = _pooled_and_top(amap, pool, key_pool, 5)
    padded = torch.nn.functional.pad(dense, (0, -lk % key_pool, 0, -lq % pool))
    cells = padded.unflatten(-1, (-1, key_pool)).unflatten(-3, (-1, pool)).sum((-3, -1))
    rows = torch.tensor([min(pool, lq - a) for a in range(0, lq, pool)], dtype=torch.float32)
    cols = torch.tensor(
        [min(key_pool, lk - a) for a in range(0, lk, key_pool)], dtype=torch.float32
    )
    torch.testing.assert_close(means, cells / (rows[:, None] * cols[None, :]))
    if pool == key_pool:
        torch.testing.assert_close(means, _block_means(dense, pool))
    top = dense.topk(5, dim=-1)
    torch.testing.assert_close(w, top.values)
    assert torch.equal(i, top.indices)
