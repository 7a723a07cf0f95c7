"""The source ↔ target view of an encoder–decoder (issue 16, item 5): a source token focused in
the encoder panel, or on the source side of cross-attention, shows which target tokens attend
to it; a target token focused in the decoder panel shows which source tokens it attends to."""

import pytest
from tests.inspection.model_folders import save_model_folder

from attnlab.inspection.pretrained import load_folder
from attnlab.inspection.report import inspect
from attnlab.viz.html import write_page
from attnlab.viz.payload import AttentionPayload

from .conftest import open_page

pytestmark = pytest.mark.browser


def strong(page, nth):
    return page.locator("svg.headview").nth(nth).evaluate(
        "s => [...s.querySelectorAll('line.strong')].map(l => [+l.dataset.q, +l.dataset.k, "
        "+l.dataset.value])")  # fmt: skip


def active(page, nth, side):
    return page.locator("svg.headview").nth(nth).evaluate(
        f"s => [...s.querySelectorAll('text.active[data-side={side}]')].map(t => +t.dataset.index)")  # fmt: skip


@pytest.fixture(scope="module")
def bart(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bart") / "bart"
    save_model_folder("bart", folder)
    model, tokenizer = load_folder(folder)
    report = inspect("the cat sat", model=model, tokenizer=tokenizer, target="le chat")
    return report, AttentionPayload.panels(report)


def test_a_source_token_shows_the_targets_attending_to_it(browser, tmp_path, bart):
    report, panels = bart
    assert [p.role for p in panels] == ["encoder", "decoder", "cross"]
    page, errors = open_page(browser, write_page(panels, tmp_path / "p.html"), "layer=1&head=3")
    source, cross = 4, report.layers.index(panels[2].layers[1])
    page.hover(f"svg.headview >> nth=0 >> text[data-side='query'][data-index='{source}']")
    links = strong(page, 2)  # cross-attention: every target query's link into that source key
    assert {k for _, k, _ in links} == {source}
    assert {q for q, _, _ in links} == set(range(len(report.target_tokens)))
    weights = report.maps[report.layers[cross]].head(3)[0]  # (target, source)
    for q, k, w in links:
        assert abs(w - float(weights[q, k])) < 1e-4
    assert active(page, 2, "key") == [source] and active(page, 1, "query") == []  # not a target
    # The same from the source side of the cross panel: the encoder panel follows.
    page.hover(f"svg.headview >> nth=2 >> text[data-side='key'][data-index='{source - 1}']")
    assert {k for _, k, _ in strong(page, 2)} == {source - 1}
    assert active(page, 0, "query") == [source - 1]
    assert errors == []


def test_a_target_token_shows_the_sources_it_attends_to(browser, tmp_path, bart):
    report, panels = bart
    page, errors = open_page(browser, write_page(panels, tmp_path / "p.html"), "layer=1&head=3")
    target = 2
    page.click(f"svg.headview >> nth=1 >> text[data-side='query'][data-index='{target}']")
    assert {q for q, _, _ in strong(page, 2)} == {target}  # the cross panel: target → sources
    assert {k for _, k, _ in strong(page, 2)} <= set(range(len(report.tokens)))
    assert strong(page, 0) == []  # the encoder has no target tokens
    # A source token pinned on the cross panel's key side survives a reload (side=key).
    page.click("svg.headview >> nth=2 >> text[data-side='key'][data-index='1']")
    assert "side=key" in page.evaluate("location.hash")
    page.reload()
    page.wait_for_selector("body[data-rendered]")
    assert {k for _, k, _ in strong(page, 2)} == {1} and active(page, 0, "query") == [1]
    assert errors == []
