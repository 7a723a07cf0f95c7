"""``attnlab.masks``: the public name of :mod:`attnlab.functional.masks` (True = may attend)."""

from attnlab.functional.masks import (
    MaskReport,
    causal,
    combine,
    describe,
    from_key_padding,
    from_masked_out,
    padding_from_lengths,
    sliding_window,
)

__all__ = [
    "MaskReport",
    "causal",
    "combine",
    "describe",
    "from_key_padding",
    "from_masked_out",
    "padding_from_lengths",
    "sliding_window",
]
