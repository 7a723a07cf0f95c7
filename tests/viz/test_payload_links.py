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
