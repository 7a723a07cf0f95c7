"""One headless Chromium per test module (Debian's, driven by playwright), and page helpers."""

import shutil

import pytest

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


def open_page(browser, path, fragment="", viewport=(1200, 900)):
    """The page at ``path`` (+ ``#fragment``), rendered; console errors, script errors and
    dialogs (an alert from a token would be one) are collected in the returned list."""
    page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("dialog", lambda d: (errors.append(f"dialog: {d.message}"), d.dismiss()))
    page.goto(path.as_uri() + (f"#{fragment}" if fragment else ""))
    page.wait_for_selector("body[data-rendered]")
    return page, errors


def tooltip_value(page) -> float:
    return float(page.inner_text("#tooltip .tip-value"))


def hover_cell(page, r, c, panel=0, rows=None, cols=None):
    """Move the mouse to the centre of cell (r, c) of a panel's heatmap (no zoom)."""
    canvas = page.locator("canvas.heat").nth(panel)
    box = canvas.bounding_box()
    rows = rows or int(canvas.get_attribute("data-rows"))
    cols = cols or int(canvas.get_attribute("data-cols"))
    page.mouse.move(box["x"] + (c + 0.5) * box["width"] / cols,
                    box["y"] + (r + 0.5) * box["height"] / rows)  # fmt: skip
    return tooltip_value(page)
