"""The page's generation step slider (issue 16, item 5): after `show --generate`, step k shows
the tokens fed so far and focuses the query that predicted the k-th generated token, in a
decoder LM and in an encoder–decoder's decoder and cross-attention panels."""

import pytest
from tests.inspection.model_folders import save_model_folder

from attnlab.inspection.pretrained import load_folder
from attnlab.inspection.report import generate
from attnlab.viz.html import write_page
from attnlab.viz.payload import AttentionPayload

from .conftest import open_page

pytestmark = pytest.mark.browser


def generated(name, tmp_path, prompt, n):
    save_model_folder(name, tmp_path / name)
    model, tokenizer = load_folder(tmp_path / name)
    return generate(prompt, model=model, tokenizer=tokenizer, max_new_tokens=n)


def strong(page, nth=0):
    return page.locator("svg.headview").nth(nth).evaluate(
        "s => [...s.querySelectorAll('line.strong')].map(l => [+l.dataset.q, +l.dataset.k, "
        "+l.dataset.head, +l.dataset.value])")  # fmt: skip


def test_steps_replay_a_decoder_lm(browser, tmp_path):
    report = generated("gpt2", tmp_path, "the cat", 4)
    (payload,) = AttentionPayload.panels(report)
    prompt = len(report.tokens) - len(report.generated) + 1  # fed: prompt + 3 generated
    assert payload.steps == tuple((prompt - 1 + k, t) for k, t in enumerate(report.generated))
    page, errors = open_page(browser, write_page(payload, tmp_path / "page.html"),
                             "view=head&layer=1&head=2")  # fmt: skip
    assert page.get_attribute("#step", "max") == "4" and strong(page) == []  # off: no focus
    page.fill("#step", "2")
    row = prompt  # the query of the first generated token predicted the second
    links = strong(page)
    assert links and {q for q, *_ in links} == {row} and max(k for _, k, *_ in links) <= row
    want = report.maps[report.layers[1]].query(row)[0, 2]
    for _, k, _, w in links:
        assert abs(w - float(want[k])) < 1e-4
    svg = page.locator("svg.headview")
    later = svg.evaluate("s => [...s.querySelectorAll('text.future')].map(t => +t.dataset.index)")
    assert sorted(set(later)) == list(range(row + 1, len(report.tokens)))
    drawn = svg.evaluate("s => Math.max(...[...s.querySelectorAll('line')].map(l => +l.dataset.q))")
    assert drawn == row  # no link from a token that was not there yet
    assert page.inner_text(".step-note") == (
        f'step 2 of 4: the query of "{report.tokens[row]}" (row {row}) predicted '
        f'"{report.generated[1]}"'
    )
    assert "step=2" in page.evaluate("location.hash")
    page.reload()  # the step is part of the view's URL
    page.wait_for_selector("body[data-rendered]")
    assert page.input_value("#step") == "2" and {q for q, *_ in strong(page)} == {row}
    page.fill("#step", "0")
    assert page.locator("svg.headview text.future").count() == 0 and strong(page) == []
    assert errors == []


def test_steps_replay_an_encoder_decoder_in_its_decoder_and_cross_panels(browser, tmp_path):
    report = generated("bart", tmp_path, "the cat sat", 3)
    panels = AttentionPayload.panels(report)
    assert [p.role for p in panels] == ["encoder", "decoder", "cross"]
    assert panels[0].steps == () and panels[1].steps == panels[2].steps
    assert [row for row, _ in panels[2].steps] == [0, 1, 2]
    page, errors = open_page(browser, write_page(panels, tmp_path / "page.html"), "step=3")
    assert page.locator(".step-note").count() == 2  # the decoder and cross panels, not the encoder
    assert strong(page, 0) == []
    for nth in (1, 2):
        assert {q for q, *_ in strong(page, nth)} == {2}
    source = len(report.tokens)  # cross-attention: every source token is there from the start
    assert page.locator("svg.headview").nth(2).locator("text.future[data-side=key]").count() == 0
    assert page.locator("svg.headview").nth(2).locator("text[data-side=key]").count() == source
    assert errors == []
