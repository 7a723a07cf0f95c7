"""The interactive page in a real browser: Debian's Chromium driven by playwright."""

import json
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from attnlab.viz.html import Page, render_page, write_page

from .conftest import hover_cell, open_page
from .test_figures import fake_payload

pytestmark = pytest.mark.browser


def link_count(page, nth=0):
    return int(page.locator("svg.headview").nth(nth).get_attribute("data-links"))


def strong(page, nth=0):
    """(query, key, head) of the strong (focused) links of a panel's head view."""
    return (
        page.locator("svg.headview")
        .nth(nth)
        .evaluate(
            "s => [...s.querySelectorAll('line.strong')].map(l => "
            "[+l.dataset.q, +l.dataset.k, +l.dataset.head])"
        )
    )


def active(page, nth=0):
    return (
        page.locator("svg.headview")
        .nth(nth)
        .evaluate("s => [...s.querySelectorAll('text.active')].map(t => +t.dataset.index)")
    )


def test_links_are_drawn_at_load_and_the_focused_token_strong(browser, tmp_path):
    path = write_page(fake_payload(12, L=3, H=4), tmp_path / "page.html")
    page, errors = open_page(browser, path)
    assert link_count(page) > 50 and strong(page) == []  # every head's links, faintly, unhovered
    page.hover("svg.headview text[data-side='query'][data-index='3']")
    assert {q for q, _, _ in strong(page)} == {3} and len(strong(page)) > 4
    page.click("svg.headview text[data-side='query'][data-index='3']")  # pin
    page.mouse.move(1100, 800)  # leaves the head view: the pinned token stays
    assert {q for q, _, _ in strong(page)} == {3}
    page.click("#heads span[data-head='0']")  # hide head 0
    assert {h for _, _, h in strong(page)} == {1, 2, 3}
    page.select_option("#dir", "by")  # what attends to token 3
    assert {k for _, k, _ in strong(page)} == {3} and len(strong(page)) > 4
    assert errors == []


def test_long_text_scrolls_through_every_token(browser, tmp_path):
    path = write_page(fake_payload(600, L=1, H=2), tmp_path / "page.html")
    page, errors = open_page(browser, path)
    indices = "s => [...s.querySelectorAll('text[data-side=query]')].map(t => +t.dataset.index)"
    shown = page.eval_on_selector("svg.headview", indices)
    assert 0 in shown and max(shown) < 100  # rows drawn as they come into view ...
    page.eval_on_selector(".scroll", "b => { b.scrollTop = b.scrollHeight; }")
    page.wait_for_function(
        "document.querySelector('svg.headview text[data-side=query][data-index=\"599\"]')"
    )
    assert link_count(page) > 0 and errors == []  # ... down to the last one, with its links


def test_heatmap_has_token_axes_a_colour_bar_and_zooms(browser, tmp_path):
    path = write_page(fake_payload(12, L=2, H=2), tmp_path / "page.html")
    page, errors = open_page(browser, path, "view=heatmap&layer=1&head=0&token=4")
    tokens = [f"w{i}" for i in range(12)]
    assert page.locator(".axis.active").all_inner_texts() == ["w4", "w4"]  # the focused token
    assert page.locator(".ylabels .axis").all_inner_texts() == tokens
    assert page.locator(".xlabels .axis").all_inner_texts() == tokens
    assert page.locator(".bar canvas").count() == 1
    assert page.inner_text(".bar-label") == "attention weight"
    long, errors2 = open_page(browser, write_page(fake_payload(1000, L=1, H=1), tmp_path / "l.html"),
                              "view=heatmap")  # fmt: skip
    labels = long.locator(".ylabels .axis").all_inner_texts()
    assert 5 < len(labels) < 40  # thinned when crowded (125 pooled rows)
    hover_cell(long, 0, 0)
    assert "block mean" in long.inner_text("#tooltip")
    for _ in range(3):
        long.click("#zoom-in")
    zoomed = long.locator(".ylabels .axis").all_inner_texts()
    assert labels[0] not in zoomed and len(zoomed) > 5  # zoomed about the centre, relabelled
    long.click("#zoom-reset")
    assert long.locator(".ylabels .axis").all_inner_texts() == labels
    assert errors == [] and errors2 == []


def test_model_view_is_labelled_and_a_thumbnail_opens_its_head(browser, tmp_path):
    path = write_page(fake_payload(12, L=3, H=4), tmp_path / "page.html")
    page, errors = open_page(browser, path)
    page.click("button[data-view='model']")
    assert page.locator("canvas[data-layer]").count() == 12
    labels = page.locator(".grid .label").all_inner_texts()
    assert labels == [f"head {h}" for h in range(4)] + [f"layer {i}" for i in range(3)]
    page.click("canvas[data-layer='2'][data-head='1']")
    assert page.locator("canvas.heat").count() == 1
    assert "2: l2, head 1" in page.inner_text("#panels")
    assert page.input_value("#layer") == "2" and page.input_value("#head") == "1"
    page.click("button[data-view='model']")
    page.select_option("#open", "head")
    page.click("canvas[data-layer='1'][data-head='3']")
    assert page.locator("svg.headview").count() == 1
    assert page.input_value("#layer") == "1" and page.input_value("#head") == "3"
    assert page.locator("#heads span:not(.off)").all_inner_texts() == ["3"]
    assert errors == []


def test_url_state_round_trip(browser, tmp_path):
    path = write_page(fake_payload(16, L=6, H=12), tmp_path / "page.html")
    fragment = "view=head&layer=5&head=11&token=10"
    page, errors = open_page(browser, path, fragment)
    assert page.input_value("#layer") == "5" and page.input_value("#head") == "11"
    assert active(page) == [10] and {q for q, _, _ in strong(page)} == {10}
    assert {h for _, _, h in strong(page)} == {11}
    assert page.evaluate("location.hash") == "#" + fragment  # the page writes what it shows
    page.select_option("#dir", "by")
    page.click("button[data-view='heatmap']")
    again, errors2 = open_page(browser, path, page.evaluate("location.hash")[1:])
    assert again.evaluate("location.hash") == page.evaluate("location.hash")
    assert again.input_value("#layer") == "5" and again.input_value("#head") == "11"
    assert again.locator("canvas.heat").count() == 1
    again.click("button[data-view='head']")
    assert again.input_value("#dir") == "by" and active(again) == [10]
    assert errors == [] and errors2 == []


def test_keyboard_moves_through_heads_and_layers_and_esc_clears(browser, tmp_path):
    path = write_page(fake_payload(8, L=3, H=4), tmp_path / "page.html")
    page, errors = open_page(browser, path, "view=head&layer=1&head=1&token=2")
    state = lambda: (page.input_value("#layer"), page.input_value("#head"))  # noqa: E731
    page.keyboard.press("ArrowRight")
    assert state() == ("1", "2") and {h for _, _, h in strong(page)} == {2}
    page.keyboard.press("ArrowLeft")
    page.keyboard.press("ArrowLeft")
    assert state() == ("1", "0")
    page.keyboard.press("ArrowDown")
    assert state() == ("2", "0")
    page.keyboard.press("ArrowDown")  # the last layer stays
    page.keyboard.press("ArrowUp")
    assert state() == ("1", "0") and active(page) == [2]
    page.keyboard.press("Escape")
    assert (
        active(page) == [] and strong(page) == [] and "token=" not in page.evaluate("location.hash")
    )
    assert errors == []


def test_comparison_focus_follows_position_or_token_text(browser, tmp_path):
    same = write_page(fake_payload(8), tmp_path / "same.html", compare=fake_payload(8, seed=1))
    page, errors = open_page(browser, same)
    page.hover("svg.headview >> nth=0 >> text[data-side='query'][data-index='5']")
    assert active(page, 0) == [5] and active(page, 1) == [5]
    p = fake_payload(8)
    longer = fake_payload(10, seed=1)
    tokens = ("x", "y", *p.tokens)  # the same words two positions later
    longer = type(p)("longer", tokens, longer.layers, longer.maps, longer.pool,
                     longer.top_indices, longer.top_weights)  # fmt: skip
    page, errors2 = open_page(browser, write_page(p, tmp_path / "d.html", compare=longer))
    page.hover("svg.headview >> nth=1 >> text[data-side='query'][data-index='6']")  # "w4"
    assert active(page, 0) == [4] and active(page, 1) == [6]
    assert {q for q, _, _ in strong(page, 0)} == {4}
    assert page.locator("button[data-view='difference']").count() == 0  # lengths differ
    assert errors == [] and errors2 == []


def test_difference_view_of_two_aligned_texts(browser, tmp_path):
    a, b = fake_payload(8), fake_payload(8, seed=1)
    page, errors = open_page(browser, write_page(a, tmp_path / "p.html", compare=b),
                             "view=difference&layer=1&head=2")  # fmt: skip
    assert page.locator("canvas.heat").count() == 1
    for r, c in [(0, 0), (3, 5), (7, 1)]:
        want = float(a.maps[1, 2, r, c] - b.maps[1, 2, r, c])
        assert hover_cell(page, r, c) == pytest.approx(want, abs=6e-4)
    assert errors == []


def grey(path):
    return np.asarray(Image.open(path).convert("RGB"), dtype=float)


def test_screenshots_show_links_and_maps(browser, tmp_path):
    """Pixel statistics of the views: coloured links in the head view at load, a map with
    contrast in the heatmap, 12 distinct thumbnails in the model view."""
    path = write_page(fake_payload(12, L=3, H=4), tmp_path / "page.html")
    page, errors = open_page(browser, path)
    page.locator("svg.headview").screenshot(path=str(tmp_path / "head.png"))
    rgb = grey(tmp_path / "head.png")
    coloured = (rgb.max(-1) - rgb.min(-1)) > 40  # head colours, not black text on white
    assert coloured.mean() > 0.01, f"head view has {coloured.mean():.4f} coloured pixels"
    page.click("button[data-view='heatmap']")
    page.locator("canvas.heat").screenshot(path=str(tmp_path / "heat.png"))
    heat = grey(tmp_path / "heat.png").mean(-1)
    assert heat.std() > 20 and (heat > 150).mean() > 0.005  # dark background, bright cells
    page.click("button[data-view='model']")
    thumbs = page.locator("canvas[data-layer]")
    pictures = set()
    for n in range(thumbs.count()):
        thumbs.nth(n).screenshot(path=str(tmp_path / "t.png"))
        pixels = grey(tmp_path / "t.png")
        assert pixels.std() > 20  # a map, not a flat square
        pictures.add(pixels.tobytes())
    assert len(pictures) == 12  # each head its own map
    assert errors == []


def test_token_text_is_shown_never_run(browser, tmp_path):
    p = fake_payload(4)
    evil = "<script>alert(1)</script>"
    p = type(p)(evil, (evil, "</script><img src=x onerror=alert(2)>", "&amp;", "ok"), p.layers,
                p.maps, p.pool, p.top_indices, p.top_weights)  # fmt: skip
    path = write_page(p, tmp_path / "page.html")
    assert "<script>alert(1)" not in path.read_text()
    page, errors = open_page(browser, path, "token=0")
    text = page.inner_text("#panels")
    assert evil in text and "&amp;" in text
    page.hover("svg.headview line.strong >> nth=0", force=True)  # links overlap there
    assert evil in page.inner_text("#tooltip")
    page.click("button[data-view='heatmap']")
    assert evil in page.locator(".ylabels .axis").all_inner_texts()
    hover_cell(page, 1, 0)
    assert "</script><img src=x onerror=alert(2)>" in page.inner_text("#tooltip")
    assert page.locator("img").count() == 0
    assert errors == []  # no alert dialog, no script error


def test_long_text_page_stays_small(tmp_path):
    html = render_page(fake_payload(1024, L=6, H=12))
    assert len(html.encode()) < 10 * 2**20


class Tags(HTMLParser):
    """Start tags as a browser's tokenizer sees them: (tag, attributes with entities decoded),
    and the text inside each <script> element."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.tags, self.scripts, self._in_script = [], [], False
        self.feed(text)
        self.close()

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, dict(attrs)))
        if tag == "script":
            self._in_script = True
            self.scripts.append((dict(attrs), ""))

    def handle_endtag(self, tag):
        self._in_script = self._in_script and tag != "script"

    def handle_data(self, data):
        if self._in_script:
            attrs, text = self.scripts[-1]
            self.scripts[-1] = (attrs, text + data)


def evil_payload():
    p = fake_payload(4)
    tokens = ("<script>alert(1)</script>", '" onload="alert(2)', "&amp;", "</iframe><b>x</b>")
    return type(p)(tokens[0], tokens, p.layers, p.maps, p.pool, p.top_indices, p.top_weights)


@pytest.mark.parametrize("payload", [fake_payload(5), evil_payload()], ids=["plain", "evil"])
def test_notebook_repr_is_one_iframe_holding_the_whole_page(payload):
    """Inline in Jupyter: one iframe and nothing else (no script runs in the notebook's own
    page); its srcdoc, once the attribute is decoded, is the self-contained page: the data and
    the page's JavaScript inline, nothing loaded from elsewhere, every token intact."""
    outer = Tags(Page(payload)._repr_html_())
    assert [tag for tag, _ in outer.tags] == ["iframe"]
    srcdoc = outer.tags[0][1]["srcdoc"]
    assert srcdoc == render_page(payload)
    inner = Tags(srcdoc)
    assert not any("src" in attrs or "href" in attrs for _, attrs in inner.tags)
    (data_attrs, data), (js_attrs, js) = inner.scripts  # exactly two scripts: data, then code
    assert data_attrs.get("type") == "application/json" and js_attrs == {}
    assert "document" in js and len(js) > 1000  # the page's code, not a loader
    assert [t["tokens"] for t in json.loads(data)["texts"]] == [list(payload.tokens)]


def test_notebook_repr_renders_the_page_in_a_browser_without_running_tokens(browser):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: (errors.append(f"dialog: {d.message}"), d.dismiss()))
    page.set_content(Page(evil_payload())._repr_html_())
    frame = page.frame_locator("iframe")
    frame.locator("body[data-rendered]").wait_for(timeout=10_000)
    text = frame.locator("#panels").inner_text()
    assert "<script>alert(1)</script>" in text and "</iframe><b>x</b>" in text
    assert frame.locator("#panels b").count() == 0
    assert page.locator("iframe").count() == 1 and errors == []


def test_compare_with_another_model_shape_is_refused():
    with pytest.raises(ValueError, match="same shape: 2×4 vs 3×4"):
        render_page(fake_payload(5), fake_payload(5, L=3))


def test_compare_with_other_measures_is_refused():
    from dataclasses import replace

    p = fake_payload(5)
    rollout = replace(fake_payload(5, L=1, H=1), measure="rollout")
    with pytest.raises(
        ValueError, match=r"same measures: \['attention', 'rollout'\] vs \['attention'\]"
    ):
        render_page(replace(p, measures=(rollout,)), p)


def cross_payload(T=3, S=5, L=2, H=4):
    """Cross-attention: T target queries over S source keys (keys labelled s0, s1, ...)."""
    import torch

    from attnlab.viz.payload import AttentionPayload

    g = torch.Generator().manual_seed(2)
    maps = torch.softmax(torch.randn(L, H, T, S, generator=g) * 3, -1)
    top_w, top_i = maps.topk(S, -1)
    return AttentionPayload(
        "cross", tuple(f"t{i}" for i in range(T)), tuple(f"x{i}" for i in range(L)), maps, 1,
        top_i, top_w, key_tokens=tuple(f"s{j}" for j in range(S)), key_pool=1, role="cross",
    )  # fmt: skip


def test_cross_attention_panel_labels_keys_with_the_source(browser, tmp_path):
    path = write_page([fake_payload(5), cross_payload()], tmp_path / "page.html")
    page, errors = open_page(browser, path)
    cross = page.locator("svg.headview").nth(1)
    queries = cross.locator("text[data-side='query']").all_text_contents()
    keys = cross.locator("text[data-side='key']").all_text_contents()
    assert (queries, keys) == (["t0", "t1", "t2"], ["s0", "s1", "s2", "s3", "s4"])
    assert link_count(page, 1) > 0
    heat, errors2 = open_page(browser, path, "view=heatmap&layer=1&head=2")
    panel = heat.locator(".panel").nth(1)  # the cross map: 3 target rows, 5 source columns
    assert panel.locator(".ylabels .axis").all_inner_texts() == ["t0", "t1", "t2"]
    assert panel.locator(".xlabels .axis").all_inner_texts() == ["s0", "s1", "s2", "s3", "s4"]
    assert errors == [] and errors2 == []
