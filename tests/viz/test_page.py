"""The interactive page in a real browser: Debian's Chromium driven by playwright."""

import json
import shutil
from html.parser import HTMLParser

import pytest

from attnlab.viz.html import Page, render_page, write_page

from .test_figures import fake_payload

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip


@pytest.fixture(scope="module")
def browser():
    if shutil.which("chromium") is None:
        pytest.fail("Debian chromium is not installed: run `make system-deps` (make test does)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def open_page(browser, path):
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: (errors.append(f"dialog: {d.message}"), d.dismiss()))
    page.goto(path.as_uri())
    page.wait_for_selector("body[data-rendered]")
    return page, errors


def link_count(page):
    return int(page.get_attribute("svg.headview", "data-links"))


def test_hover_draws_links_and_controls_change_them(browser, tmp_path):
    path = write_page(fake_payload(12, L=3, H=4), tmp_path / "page.html")
    page, errors = open_page(browser, path)
    assert link_count(page) == 0
    page.hover("svg.headview text[data-index='3']")
    with_all_heads = link_count(page)
    assert with_all_heads > 0
    page.click("#heads span[data-head='0']")  # hide head 0
    page.hover("svg.headview text[data-index='3']")
    assert 0 < link_count(page) < with_all_heads
    page.select_option("#layer", "2")
    page.hover("svg.headview text[data-index='4']")
    assert link_count(page) > 0
    page.screenshot(path=str(tmp_path / "head.png"))
    assert (tmp_path / "head.png").stat().st_size > 5000
    assert errors == []


def test_model_view_thumbnail_opens_the_heatmap(browser, tmp_path):
    path = write_page(fake_payload(12, L=3, H=4), tmp_path / "page.html")
    page, errors = open_page(browser, path)
    page.click("button[data-view='model']")
    assert page.locator("canvas[data-layer]").count() == 12
    page.click("canvas[data-layer='2'][data-head='3']")
    assert page.locator("canvas.heat").count() == 1
    assert "layer 2, head 3" in page.inner_text("#panels")
    assert page.input_value("#layer") == "2" and page.input_value("#head") == "3"
    assert errors == []


def test_comparison_shows_two_texts_side_by_side(browser, tmp_path):
    path = write_page(fake_payload(8), tmp_path / "page.html", compare=fake_payload(9, seed=1))
    page, errors = open_page(browser, path)
    assert page.locator(".panel").count() == 2
    assert errors == []


def test_token_text_is_shown_never_run(browser, tmp_path):
    p = fake_payload(4)
    evil = "<script>alert(1)</script>"
    p = type(p)(evil, (evil, "</script><img src=x onerror=alert(2)>", "&amp;", "ok"), p.layers,
                p.maps, p.pool, p.top_indices, p.top_weights)  # fmt: skip
    path = write_page(p, tmp_path / "page.html")
    assert "<script>alert(1)" not in path.read_text()
    page, errors = open_page(browser, path)
    text = page.inner_text("#panels")
    assert evil in text and "&amp;" in text
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
