"""`attnlab serve` in a real browser (Debian's Chromium through playwright): type, submit, read."""

from __future__ import annotations

import re

import pytest
from tests.viz.conftest import ARGS, CHROMIUM

from attnlab.inspection.pretrained import load_folder
from attnlab.inspection.report import inspect

from .conftest import long_text

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        b.close()


def open_app(browser, server):
    """The form page; console errors, script errors and dialogs are collected."""
    page = browser.new_page(viewport={"width": 1200, "height": 1000})
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: (errors.append(f"dialog: {d.message}"), d.dismiss()))
    page.goto(server.url)
    return page, errors


def submit(page, text, model=0, compare=None):
    page.select_option("#model", str(model))
    page.fill("#text", text)
    if compare is not None:
        page.fill("#compare", compare)
    page.click("#submit")


def result(page, timeout=60_000):
    """The result frame, once its page has rendered."""
    page.wait_for_selector("#result:not([hidden])", timeout=timeout)
    frame = page.frame_locator("#result")
    frame.locator("body[data-rendered]").wait_for(timeout=timeout)
    return frame


def test_type_a_sentence_submit_and_see_links(browser, server):
    page, errors = open_app(browser, server)
    assert page.locator("#model option").all_inner_texts() == [
        "all-MiniLM-L6-v2 (bundled)", "long-bert"]  # fmt: skip
    assert page.locator("#target-box").is_hidden()  # for encoder–decoder models only
    submit(page, "The animal didn't cross the street because it was tired")
    frame = result(page)
    links = int(frame.locator("svg.headview").get_attribute("data-links"))
    assert links > 0  # drawn at load, without hovering
    assert "animal" in frame.locator("svg.headview").text_content()
    page.wait_for_function("document.getElementById('status').textContent.startsWith('done in')")
    assert page.get_attribute("#open", "href").startswith("/view/")
    assert errors == []


def test_two_pages_at_once(browser, server):
    pages = [open_app(browser, server) for _ in range(2)]
    texts = ["the first page asks about cats", "the second page asks about dogs"]
    for (page, _), text in zip(pages, texts, strict=True):
        submit(page, text)  # both submitted before either is waited for
    for (page, errors), text in zip(pages, texts, strict=True):
        frame = result(page)
        assert frame.locator(".panel h2").inner_text() == text
        assert int(frame.locator("svg.headview").get_attribute("data-links")) > 0
        assert errors == []


def test_hostile_text_is_shown_as_text(browser, server):
    hostile = "<img src=x onerror=alert(1)></script><script>alert(2)</script> & it"
    page, errors = open_app(browser, server)
    submit(page, hostile, compare="<b>bold</b>")
    frame = result(page)
    assert frame.locator(".panel h2").all_inner_texts() == [hostile, "<b>bold</b>"]
    assert frame.locator("img, b, .panel script").count() == 0
    assert "</script><script>" in frame.locator("svg.headview").first.text_content()  # tokens
    assert errors == []


def test_errors_are_said_in_the_page(browser, server):
    page, errors = open_app(browser, server)
    submit(page, long_text(600))  # MiniLM takes 512 positions
    page.wait_for_selector("#status.error")
    assert page.inner_text("#status") == (
        "text is 600 tokens long; at most 512 are taken (the positions of all-MiniLM-L6-v2 "
        "(bundled))")  # fmt: skip
    assert page.locator("#result").is_hidden()
    assert all("status of 422" in e for e in errors), errors  # the refused request, nothing else


@pytest.mark.slow
def test_zoom_into_a_4096_token_document_reads_exact_weights(browser, server):
    text = long_text(4096)
    page, errors = open_app(browser, server)
    submit(page, text, model=1)
    result(page, timeout=120_000)
    view = page.get_attribute("#open", "href")
    page.goto(server.url.rstrip("/") + view + "#view=heatmap&layer=1&head=2")
    page.wait_for_selector("body[data-rendered]")
    heat = page.locator("canvas.heat")
    assert heat.get_attribute("data-rows") == "128"  # block means of 32 × 32 tokens
    for _ in range(4):  # zoom ×16: 256 tokens a side in view
        page.click("#zoom-in")
    page.wait_for_selector("canvas.heat[data-exact]")
    view = tuple(map(float, heat.get_attribute("data-view").split(",")))
    assert view == (1920, 2176, 1920, 2176)  # queries qa..qb, keys ka..kb
    heat.scroll_into_view_if_needed()
    box = heat.bounding_box()
    middle = (box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    page.mouse.move(*middle)
    page.mouse.down()  # drag: later keys, earlier queries in view
    page.mouse.move(middle[0] - 150, middle[1] + 60, steps=5)
    page.mouse.up()
    page.wait_for_function("""() => {
        const v = document.querySelector("canvas.heat").dataset.view;
        return v !== undefined && +v.split(",")[2] > 2000 && +v.split(",")[0] < 1900;
    }""")
    qa, qb, ka, kb = map(float, heat.get_attribute("data-view").split(","))
    shown = page.locator(".ylabels .axis").evaluate_all("a => a.map(e => +e.dataset.index)")
    assert len(shown) > 20 and min(shown) >= qa and max(shown) < qb  # tokens, not blocks
    model, tokenizer = load_folder(server.folder)
    report = inspect(text, model=model, tokenizer=tokenizer)
    amap = report.maps[report.layers[1]]
    assert page.locator(".panel h2").bounding_box()["height"] < 60  # a long title is cut short
    for i, j in [
        (int(qa) + 5, int(ka) + 3),
        (int(qa) + 100, int(kb) - 9),
        (int(qb) - 2, int(ka) + 90),
    ]:
        page.mouse.move(box["x"] + 1 + (j + 0.5 - ka) / (kb - ka) * (box["width"] - 2),
                        box["y"] + 1 + (i + 0.5 - qa) / (qb - qa) * (box["height"] - 2))  # fmt: skip
        tip = page.locator("#tooltip .tip-value")
        # The tooltip names the tokens under the pointer (a token is ~1.4 px wide: the pointer's
        # whole pixels may land on a neighbour) and their exact weight.
        named = re.fullmatch(r'query "(.+)" \((\d+)\), key "(.+)" \((\d+)\), exact: ',
                             page.inner_text("#tooltip .tip-what"))  # fmt: skip
        qi, kj = int(named[2]), int(named[4])
        assert abs(qi - i) <= 1 and abs(kj - j) <= 1, named[0]
        assert (named[1], named[3]) == (report.tokens[qi], report.tokens[kj])
        want = float(amap.rows(qi, qi + 1, heads=2)[0, 0, 0, kj])
        assert abs(float(tip.get_attribute("data-value")) - want) < 1e-5
        assert abs(float(tip.inner_text()) - want) <= max(5e-4, 0.01 * want)  # as printed
    assert page.inner_text(".bar-label") == "attention weight (exact, this view)"
    page.click("#zoom-reset")  # back to the block means
    page.wait_for_selector("canvas.heat:not([data-exact])")
    assert errors == []
