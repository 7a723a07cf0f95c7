"""From text to pictures in one call: what `attnlab show` and `attnlab demo` run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from attnlab.atomic import write_json
from attnlab.inspection.pretrained import load_model_path, model_name
from attnlab.inspection.report import Head, Report, inspect
from attnlab.inspection.report import generate as generate_report
from attnlab.viz import figures
from attnlab.viz.html import write_page
from attnlab.viz.measures import MEASURES, measure_payload, with_measures
from attnlab.viz.payload import AttentionPayload
from attnlab.viz.tokens import written

__all__ = ["DEMO_SENTENCES", "Demo", "demo", "show"]

FORMATS = (".html", ".png", ".svg")


def show(
    text: str, out: str | Path, *, compare: str | None = None, layer: int | None = None,
    head: int | None = None, token: str | None = None, truncate: bool = False,
    model: str | Path | None = None, target: str | None = None, generate: int | None = None,
    measure: str | None = None,
) -> list[Path]:  # fmt: skip
    """Inspect ``text`` on the default real model (or the model at path ``model``: a Hugging Face
    ``save_pretrained`` folder, an attnlab checkpoint or a training run, see
    :func:`attnlab.inspection.pretrained.load_model_path`) and write pictures to
    ``out``. ``target``: an encoder–decoder's decoder side. ``generate``: continue (or
    translate) ``text`` by that many tokens under capture and show prompt + generated tokens.

    ``.html``: the interactive page (with ``compare`` side by side; an encoder–decoder shows
    encoder, decoder and cross-attention panels), opening on ``layer``, ``head`` and ``token``.
    ``.png`` / ``.svg``: with ``token``, the token-link view of ``layer`` (default 0; only
    ``head`` if given); with ``layer`` and ``head``, that head's heatmap; with only ``layer``,
    the grid of its heads; else all layers × heads. An encoder–decoder writes one figure per
    kind of layer, ``NAME-encoder.png``, ``NAME-decoder.png`` and ``NAME-cross.png`` (with
    ``token``: those where it is a query). ``layer``, ``head`` and ``token`` must exist whatever
    the output.

    ``measure`` (``rollout``, ``value-norms``, ``grad-attention``; ``all`` for a page) draws
    that measure instead of raw weights (see :mod:`attnlab.viz.measures`; one-stack models);
    the page keeps raw weights in its measure selector and opens on the measure."""
    out = Path(out)
    if out.suffix not in FORMATS:
        raise ValueError(f"output must end in one of {FORMATS}; got {out.name!r}")
    if compare is not None and out.suffix != ".html":
        raise ValueError("--compare needs an .html output (two texts side by side)")
    if head is not None and layer is None and token is None and out.suffix != ".html":
        raise ValueError("--head needs --layer")
    loaded, tokenizer = load_model_path(model) if model is not None else (None, None)
    name = model_name(model) if model is not None else "all-MiniLM-L6-v2"

    def panels_of(t: str) -> list[AttentionPayload]:
        if generate is not None:
            report = generate_report(t, model=loaded, tokenizer=tokenizer, max_new_tokens=generate)
        else:
            report = inspect(t, model=loaded, tokenizer=tokenizer, target=target, truncate=truncate)
        if measure is None:
            return AttentionPayload.panels(report)
        return [_measured(report, measure, token, page=out.suffix == ".html")]

    panels = drawn = panels_of(text)
    if token is not None:  # as the tokenizer writes it, or as drawn (↵, ␣, decoded bytes)
        every = [t for p in panels for t in (*p.tokens, *p.keys)]
        token = written(token, every, byte_level=panels[0].byte_level)
    if measure == "rollout" and out.suffix != ".html":
        layer, head = (None, None) if token is not None else (0, 0)  # its one map
    for panel in panels:  # the same checks for every kind of output
        panel.check(layer, head)
    if token is not None:  # an encoder–decoder's token may be in the source or the target
        drawn = [p for p in panels if token in p.tokens] or [panels[0]]
        drawn[0].token_index(token)  # in none: the error names the tokens
    if out.suffix == ".html":
        other = panels_of(compare) if compare is not None else None
        start = {
            "layer": layer,
            "head": head,
            "measure": measure,
            "token": panels[0].tokens.index(token) if token in panels[0].tokens else None,
        }
        return [write_page(panels, out, compare=other, title=f"attnlab: attention on {name}",
                           start={k: v for k, v in start.items() if v is not None})]  # fmt: skip
    if len(drawn) == 1:
        return [_figure(drawn[0], out, layer, head, token)]
    return [_figure(p, out.with_name(f"{out.stem}-{p.role}{out.suffix}"), layer, head, token)
            for p in drawn]  # fmt: skip


def _figure(payload: AttentionPayload, out: Path, layer: int | None, head: int | None,
            token: str | None) -> Path:  # fmt: skip
    if token is not None:
        heads = None if head is None else [head]
        return figures.token_links(payload, layer or 0, token, out, heads=heads)
    if layer is not None and head is not None:
        return figures.heatmap(payload, layer, head, out)
    if layer is not None:
        return figures.head_grid(payload, layer, out)
    return figures.model_grid(payload, out)


def _measured(report: Report, measure: str | None, token: str | None, *,
              page: bool) -> AttentionPayload:  # fmt: skip
    """The payload ``show`` draws: raw weights, a measure, or (a page) raw weights carrying the
    measure(s) for the selector."""
    if measure is None:
        return AttentionPayload.from_report(report)
    if measure == "all" and not page:
        raise ValueError("--measure all needs an .html output (figures draw one measure)")
    if token is not None:  # as drawn (↵, ␣, decoded bytes) or as the tokenizer writes it
        token = written(token, report.tokens, byte_level=report.byte_level)
    token = token if token in report.tokens else None  # grad-attention's output: else the last
    if not page:
        return measure_payload(report, measure, token=token)
    return with_measures(report, list(MEASURES)[1:] if measure == "all" else [measure],
                         token=token)  # fmt: skip


DEMO_SENTENCES = (
    "The animal didn't cross the street because it was tired",
    "The animal didn't cross the street because it was wide",
)


@dataclass(frozen=True)
class Demo:
    reports: list[Report]  # one per sentence of DEMO_SENTENCES
    top_heads: list[list[Head]]  # per sentence: heads where "it" weighs "animal" most over "street"
    written: list[Path]


def demo(out: str | Path, *, top: int = 5) -> Demo:
    """The notes' flagship example on the real MiniLM: for both sentences, the heads where "it"
    weighs "animal" most over "street"; written to ``out``: the interactive page with both
    sentences side by side, figures of the first sentence's best head and its layer, and the
    numbers (``it_attention.json``)."""
    out = Path(out)
    reports = [inspect(text) for text in DEMO_SENTENCES]
    top_heads = [r.heads_favouring("it", "animal", "street", top) for r in reports]
    record = [
        {
            "text": r.text,
            "tokens": r.tokens,
            "top_heads": [{"layer": h.layer, "head": h.head, "animal": h.favour,
                           "street": h.against} for h in heads],
            "it_to_animal": r.weight_between("it", "animal").tolist(),  # [layer][head]
            "it_to_street": r.weight_between("it", "street").tolist(),
        }
        for r, heads in zip(reports, top_heads, strict=True)
    ]  # fmt: skip
    tired, wide = (AttentionPayload.from_report(r) for r in reports)
    best = top_heads[0][0]
    # Link views: the heads of that layer among the top ones, so the strong links stay legible.
    heads = [h.head for h in top_heads[0] if h.layer == best.layer]
    written = [
        write_page(tired, out / "attention.html", compare=wide,
                   title="attnlab demo: what does “it” attend to? (all-MiniLM-L6-v2)",
                   start={"view": "head", "layer": best.layer, "head": best.head,
                          "token": tired.tokens.index("it")}),
        figures.heatmap(tired, best.layer, best.head, out / "heatmap.png"),
        figures.head_grid(tired, best.layer, out / "heads.png"),
        figures.model_grid(tired, out / "model.png"),
        figures.token_links(tired, best.layer, "it", out / "links_tired.png", heads=heads),
        figures.token_links(wide, best.layer, "it", out / "links_wide.png", heads=heads),
        figures.qkv_flow(out / "qkv_flow.png"),
        write_json(out / "it_attention.json", record),
    ]  # fmt: skip
    return Demo(reports, top_heads, written)
