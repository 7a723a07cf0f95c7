"""``explain(text)``: one attention computation of a real model, step by step, as data and as a
page. What ``attnlab explain`` runs.

The numbers come from the model itself: its real forward is run once with hooks
(:mod:`attnlab.explain.anatomy`), the attention is recomputed step by step from the hooked Q, K, V
and the model's own W_O, LayerNorm and feed-forward modules (:mod:`attnlab.explain.walk`), and the
result is checked against the model's own hidden state before the page is written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from attnlab.explain.anatomy import Anatomy, anatomy_of, limits_of
from attnlab.explain.pitfalls import check_pitfall, pitfall_variant, shapes_pitfall
from attnlab.explain.walk import Variant, raw_scores, walk
from attnlab.viz.tokens import byte_level, decoded, written

__all__ = ["MAX_TOKENS", "Explanation", "explain"]

MAX_TOKENS = 64  # a walk by hand: every card lists each key (`attnlab show` draws long texts)
TOLERANCE = 1e-5  # the walk must reproduce the model's hidden state (measured: 1e-7..1e-6)


@dataclass
class Explanation:
    """The walk-through's data: tokens, the fixed steps (embeddings, Q, K, V, raw scores) and,
    per :class:`Variant`, every later step. ``variants[model_variant.key]["final"][i]`` is the
    model's own hidden state of token i after ``layer`` (checked to :data:`TOLERANCE`)."""

    text: str
    model_name: str
    tokens: list[str]
    ids: list[int]
    layer: int
    anatomy: Anatomy
    fixed: dict[str, Tensor]
    variants: dict[str, dict[str, Tensor]]
    model_variant: Variant
    start: dict  # token, head, scale, mask, pitfall: the view the page opens on
    max_difference: float  # |walk's final − model's hidden state|, max over tokens and dims
    shapes: dict | None = None  # the shapes pitfall's record
    title: str = field(default="")

    @property
    def final(self) -> Tensor:  # (T, D): the walk's output, the model's own variant
        return self.variants[self.model_variant.key]["final"]

    def render(self) -> str:
        from attnlab.explain.page import render_explanation

        return render_explanation(self)

    def save(self, path: str | Path) -> Path:
        """Write the self-contained page atomically; the path comes last, as everywhere."""
        from attnlab.atomic import write_text

        return write_text(path, self.render())

    def _repr_html_(self) -> str:  # inline in Jupyter, isolated in an iframe like viz.html.Page
        from attnlab.viz.html import inline

        return inline(self.render(), height=720)


def explain(
    text: str, *, model: nn.Module | None = None, tokenizer=None, layer: int = 0, head: int = 0,
    token: str | None = None, position: int | None = None, pitfall: str | None = None,
    model_name: str | None = None,
) -> Explanation:  # fmt: skip
    """Walk one attention computation of ``model`` (default: the bundled all-MiniLM-L6-v2) on
    ``text``: layer ``layer``, opening on ``head`` and one token, chosen by ``position`` (its
    0-based index) or by ``token`` (its text, with the tokenizer's word markers ``Ġ``, ``##``,
    ``▁`` optional; a text that occurs more than once is refused with its positions). Default:
    the last token (before BERT's ``[SEP]``); the first for the mask pitfall. ``pitfall``
    (``scaling``, ``mask``, ``shapes``) opens the page with that mistake made, next to the
    correct numbers. Texts longer than :data:`MAX_TOKENS` or than the model's positions are
    refused before the model runs.

    ``model``: a Hugging Face BERT-family encoder or an attnlab GPT; ``tokenizer``: a Hugging
    Face tokenizer, or attnlab's character / BPE tokenizer (``encode``, ``decode``)."""
    return build(text, model=model, tokenizer=tokenizer, layer=layer, head=head, token=token,
                 position=position, pitfall=pitfall, model_name=model_name)  # fmt: skip


def build(
    text: str, *, model: nn.Module | None, tokenizer, layer: int, head: int, token: str | None,
    position: int | None, pitfall: str | None, model_name: str | None, flag=str,
) -> Explanation:  # fmt: skip
    """:func:`explain`, with ``flag`` spelling the arguments' names in its errors (the
    command line passes ``"--" + name``)."""
    for name, value in (("layer", layer), ("head", head), ("position", position)):
        if value is None and name == "position":
            continue
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{flag(name)} must be an integer >= 0; got {value!r}")
    if token is not None and (not isinstance(token, str) or not token):
        raise ValueError(f"{flag('token')} must be a non-empty text; got {token!r}")
    if token is not None and position is not None:
        raise ValueError(f"give {flag('token')} or {flag('position')}, not both; got "
                         f"{token!r} and {position!r}")  # fmt: skip
    check_pitfall(pitfall, flag=flag)
    if model is None:
        from attnlab.inspection.pretrained import load_minilm

        model, tokenizer = load_minilm()
        model_name = model_name or "all-MiniLM-L6-v2"
    elif tokenizer is None:
        raise ValueError("a tokenizer is needed with a custom model: explain(text, model=..., "
                         "tokenizer=...)")  # fmt: skip
    limits = limits_of(model)
    if not layer < limits.n_layers:
        raise ValueError(f"{flag('layer')} must lie in [0, {limits.n_layers - 1}] for this "
                         f"model; got {layer}")  # fmt: skip
    if not head < limits.n_heads:
        raise ValueError(f"{flag('head')} must lie in [0, {limits.n_heads - 1}] for this model; "
                         f"got {head}")  # fmt: skip
    check_pitfall(pitfall, limits.kind == "gpt" and model.config.causal, flag=flag,
                  about=model_name or type(model).__name__)  # fmt: skip
    ids, tokens, extra = _tokenize(text, tokenizer, flag)
    if len(ids) > limits.max_positions:
        raise ValueError(f"{flag('TEXT')} is {len(ids)} tokens; this model reads at most "
                         f"{limits.max_positions}")  # fmt: skip
    if len(ids) > MAX_TOKENS:
        raise ValueError(f"{flag('TEXT')} is {len(ids)} tokens long; explain walks at most "
                         f"{MAX_TOKENS} (attnlab show draws long texts)")  # fmt: skip
    # The mask pitfall opens on the first token: every later one leaks into it without the mask.
    if position is not None:
        if not position < len(tokens):
            raise ValueError(f"{flag('position')} must lie in [0, {len(tokens) - 1}] for this "
                             f"text; got {position}")  # fmt: skip
        index = position
    elif token is None and pitfall == "mask":
        index = 0
    else:
        index = choose_token(tokens, token, limits.kind, flag)
    was_training = model.training
    model.eval()
    try:
        anatomy = anatomy_of(model, torch.tensor([ids]), layer, **extra)
    finally:
        model.train(was_training)
    own = Variant(scale=True, causal=anatomy.causal)
    masks = (True, False) if anatomy.kind == "gpt" else (False,)
    variants = {v.key: walk(anatomy, v) for v in (Variant(s, m) for s in (True, False)
                                                   for m in masks)}  # fmt: skip
    difference = float((variants[own.key]["final"] - anatomy.hidden_state).abs().max())
    if not difference <= TOLERANCE:
        raise ValueError(
            f"the step-by-step walk does not reproduce {type(model).__name__}'s hidden state "
            f"(max difference {difference:.2e}): its layer is not laid out as explain assumes"
        )
    fixed = {name: anatomy.parts[name] for name in _FIXED[anatomy.kind]}
    fixed["scores"] = raw_scores(anatomy)
    fixed["hidden_state"] = anatomy.hidden_state
    opening = pitfall_variant(pitfall, own)
    name = model_name or type(model).__name__
    return Explanation(
        text=text, model_name=name, tokens=tokens, ids=ids, layer=layer, anatomy=anatomy,
        fixed=fixed, variants=variants, model_variant=own,
        start={"token": index, "head": head, "scale": opening.scale, "mask": opening.causal,
               "pitfall": pitfall},
        max_difference=difference, shapes=shapes_pitfall(anatomy) if pitfall == "shapes" else None,
        title=f"attnlab explain: {name}, layer {layer}",
    )  # fmt: skip


_FIXED = {  # the steps before attention, the same in every variant
    "bert": ("token", "position", "token_type", "embeddings", "embeddings_norm", "x", "q", "k",
             "v"),
    "gpt": ("token", "position", "embeddings", "x", "norm1", "q", "k", "v"),
}  # fmt: skip


def _tokenize(text: str, tokenizer, flag=str) -> tuple[list[int], list[str], dict]:
    """ids, the tokens as the tokenizer writes them (byte-level BPE's bytes decoded back to
    letters: :func:`attnlab.viz.tokens.decoded`), and extra model inputs (token types)."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError(f"{flag('TEXT')} must be a non-empty text; got {text!r}")
    if callable(tokenizer) and hasattr(tokenizer, "convert_ids_to_tokens"):  # Hugging Face
        enc = tokenizer(text, verbose=False)  # a text too long is refused below, by name
        ids = list(enc["input_ids"])
        extra = {}
        if "token_type_ids" in enc:
            extra["token_type_ids"] = torch.tensor([enc["token_type_ids"]])
        tokens = tokenizer.convert_ids_to_tokens(ids)
        if byte_level(tokenizer):  # "ĠfuÃ©" → "Ġfué", as pictures write it
            tokens = [decoded(t) for t in tokens]
        return ids, tokens, extra
    ids = list(tokenizer.encode(text))  # attnlab's interface (encode / decode), whole tokens
    return ids, [tokenizer.decode([i]) for i in ids], {}


WORD_MARKERS = ("Ġ", "##", "▁")  # byte-level BPE's space, WordPiece's continuation, SentencePiece


def clean(token: str) -> str:
    """A token's text without the tokenizer's word marker or surrounding spaces."""
    token = token.strip()
    for marker in WORD_MARKERS:
        if token.startswith(marker) and len(token) > len(marker):
            return token[len(marker) :]
    return token


def choose_token(tokens: list[str], token: str | None, kind: str, flag=str) -> int:
    """The position of ``token``: its text as the tokenizer writes it or without the word
    marker. None: the last token (before BERT's ``[SEP]``). A text found at several positions,
    or split into several tokens, is refused naming the positions."""
    if token is None:
        special = kind == "bert" and len(tokens) > 2 and tokens[-1] == "[SEP]"
        return len(tokens) - (2 if special else 1)
    token = written(token, tokens)  # a character model's "↵" or "␣" as drawn
    word = clean(token)
    blank = not word  # white space (a character model's space, newline): itself alone
    found = [n for n, t in enumerate(tokens) if t == token or (not blank and clean(t) == word)]
    if len(found) == 1:
        return found[0]
    if found:
        raise ValueError(f"{flag('token')} {token!r} occurs at positions {found}; choose one "
                         f"with {flag('position')}")  # fmt: skip
    cleaned = [clean(t) for t in tokens]
    for start in range(len(tokens)):  # a word the tokenizer splits into pieces
        joined = ""
        for end in range(start, len(tokens)):
            joined += cleaned[end]
            if joined == word and end > start:
                raise ValueError(
                    f"{flag('token')} {token!r} is split by the tokenizer into "
                    f"{tokens[start : end + 1]} at positions {start}…{end}; choose one piece "
                    f"with {flag('token')} or {flag('position')}"
                )
            if not word.startswith(joined):
                break
    shown = list(enumerate(tokens[:40])) + ([("…", "…")] if len(tokens) > 40 else [])
    raise ValueError(f"{flag('token')} {token!r} is not in the text; its tokens (position, "
                     f"token) are {shown}")  # fmt: skip
