"""The models a server offers: named once at start, chosen in the browser by their index.

The browser never names a file: ``attnlab serve --model PATH`` loads each model at start (with
the same loader as ``attnlab show --model``, offline, never unpickling) and the page lists them
by name; a request carries only an index into that list."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from torch import nn

__all__ = ["MINILM_NAME", "ServedModel", "load_models"]

MINILM_NAME = "all-MiniLM-L6-v2 (bundled)"


@dataclass
class ServedModel:
    """A loaded model and its tokenizer, with what the page shows about it."""

    name: str
    model: nn.Module
    tokenizer: object
    # A copy of the tokenizer for counting tokens as requests arrive: a fast tokenizer must not
    # be used from two threads at once, and the worker's copy is busy while a capture runs.
    counter: object = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.counter = copy.deepcopy(self.tokenizer)

    @property
    def encoder_decoder(self) -> bool:
        from attnlab.inspection.report import is_encoder_decoder

        return is_encoder_decoder(self.model)

    @property
    def max_positions(self) -> int | None:
        """The longest text the model takes, an encoder–decoder's source (None: no limit in its
        config)."""
        return self.limits[0]

    @property
    def limits(self) -> tuple[int | None, int | None]:
        """(most tokens of a text, most decoder tokens): see
        :func:`attnlab.inspection.report.position_limits`."""
        from attnlab.inspection.report import position_limits

        return position_limits(self.model)

    def count_tokens(self, text: str, *, target: bool = False) -> int:
        """Tokens of ``text`` as :func:`attnlab.inspect` feeds it (special tokens included; a
        target with the decoder's start token, by the function that builds the decoder's
        input)."""
        from attnlab.inspection.report import decoder_start, target_ids
        from attnlab.inspection.runs import sides

        source, target_side = sides(self.counter)
        if target:
            return len(target_ids(target_side, text, decoder_start(self.model, target_side)))
        return len(source(text)["input_ids"])

    def describe(self) -> dict:
        return {"name": self.name, "encoder_decoder": self.encoder_decoder,
                "max_positions": self.max_positions}  # fmt: skip


def load_models(paths: Sequence[str | Path], *, minilm: bool = True) -> list[ServedModel]:
    """The bundled MiniLM (if ``minilm``) then the model at each of ``paths`` (a Hugging Face
    ``save_pretrained`` folder, an attnlab checkpoint or a training run, see
    :func:`attnlab.inspection.pretrained.load_model_path`), named by its folder (made unique
    with its index when two share a name)."""
    from attnlab.inspection.pretrained import load_minilm, load_model_path, model_name

    # The given models first: an incomplete one is refused before the bundled model is read.
    served = [ServedModel(model_name(path), *load_model_path(path)) for path in paths]
    if minilm:
        served.insert(0, ServedModel(MINILM_NAME, *load_minilm("sdpa")))
    names = [m.name for m in served]
    for i, m in enumerate(served):
        if names.count(m.name) > 1:
            m.name = f"{m.name} [{i}]"
    return served
