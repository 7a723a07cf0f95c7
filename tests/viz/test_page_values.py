"""The numbers the page shows are the exact ones: weights against the Report (that is, the
AttentionMap), measures against attnlab.measures, and the demo opens on its story."""

import pytest
import torch

from attnlab import Encoder, EncoderConfig, capture
from attnlab.inspection.report import Report
from attnlab.measures.tables import default_output
from attnlab.viz.html import write_page
from attnlab.viz.measures import measure_payload, with_measures
from attnlab.viz.payload import AttentionPayload

from .conftest import hover_cell, open_page, tooltip_value

pytestmark = pytest.mark.browser

T = 10


@pytest.fixture(scope="module")
def report():
    """A small attnlab encoder with random weights (2 layers × 4 heads), its report kept with
    the model so the measures run again."""
    torch.manual_seed(0)
    model = Encoder(EncoderConfig(vocab_size=40, max_len=32, n_layers=2, n_heads=4, d_model=32,
                                  d_ff=64)).eval()  # fmt: skip
    with torch.no_grad():  # peaked maps (weights up to 0.96): 8-bit values would be off by 0.002
        for weight in model.parameters():
            weight.mul_(3 if weight.dim() == 2 else 1)
    inputs = {"input_ids": torch.randint(0, 40, (1, T))}
    with torch.no_grad(), capture(model) as maps:
        model(**inputs)
    tokens = [f"t{i}" for i in range(T)]
    return Report("the text", tokens, dict(maps), "Encoder", model, inputs)


@pytest.fixture(scope="module")
def page_file(report, tmp_path_factory):
    payload = with_measures(report, ["rollout", "value-norms", "grad-attention"], token="t3")
    return write_page(payload, tmp_path_factory.mktemp("page") / "page.html")


def test_head_view_tooltip_is_the_exact_weight(browser, page_file, report):
    page, errors = open_page(browser, page_file, "view=head&layer=1&head=2&token=4")
    exact = report.weights(1, 2)  # (T, T)
    lines = page.locator("svg.headview line.strong")
    assert lines.count() == T  # a short text: every link of the focused token
    for n in range(T):
        line = lines.nth(n)
        j = int(line.get_attribute("data-k"))
        line.hover(force=True)  # links from one token overlap at its end
        assert tooltip_value(page) == pytest.approx(float(exact[4, j]), abs=5.1e-4)
        assert f'"t4" → "t{j}", head 2' in page.inner_text("#tooltip")
    values = page.locator("svg.headview text.value").all_text_contents()
    assert sorted(map(float, values)) == pytest.approx(sorted(exact[4].tolist()), abs=5.1e-4)
    assert errors == []


def test_heatmap_tooltip_is_the_exact_weight(browser, page_file, report):
    page, errors = open_page(browser, page_file, "view=heatmap&layer=0&head=3")
    exact = report.weights(0, 3)
    for r, c in [(0, 0), (2, 7), (9, 4), (5, 5)]:
        assert hover_cell(page, r, c) == pytest.approx(float(exact[r, c]), abs=5.1e-4)
        assert f'query "t{r}", key "t{c}"' in page.inner_text("#tooltip")
    assert errors == []


@pytest.mark.parametrize("measure", ["rollout", "value-norms", "grad-attention"])
def test_measure_selector_draws_the_measure(browser, page_file, report, measure):
    page, errors = open_page(browser, page_file, "view=heatmap&layer=1&head=1")
    if measure == "rollout":
        want = report.rollout()  # (T, T): one map, whatever the layer
    elif measure == "value-norms":
        want = report.value_norms()[1, 1]
    else:
        want = report.grad_attention(default_output(3))[1, 1].detach()  # output: --token t3
    raw = [hover_cell(page, r, c) for r, c in [(1, 2), (6, 6), (8, 0)]]
    page.select_option("#measure", measure)
    assert f"measure={measure}" in page.evaluate("location.hash")
    again, _ = open_page(browser, page_file, page.evaluate("location.hash")[1:])
    again.select_option("#measure", "attention")  # a measure's link keeps layer 1, head 1
    assert (again.input_value("#layer"), again.input_value("#head")) == ("1", "1")
    assert page.inner_text("#meaning").startswith(measure_payload_label(measure))
    got = [hover_cell(page, r, c) for r, c in [(1, 2), (6, 6), (8, 0)]]
    exact = [float(want[r, c]) for r, c in [(1, 2), (6, 6), (8, 0)]]
    scale = float(want.abs().max())  # values are stored to 1/32767 of the map's peak
    assert got == pytest.approx(exact, abs=5.1e-4 + scale / 32767) and got != raw
    page.click("button[data-view='head']")  # the links and their numbers: the same values
    page.click("svg.headview text[data-side='query'][data-index='3']")
    shown = sorted(map(float, page.locator("svg.headview text.value").all_text_contents()))
    row = sorted(v for v in want[3].tolist() if abs(v) >= scale / 65534)  # zeros draw nothing
    assert shown == pytest.approx(row, abs=5.1e-4 + scale / 32767)
    assert errors == []


def measure_payload_label(measure):
    from attnlab.viz.measures import MEASURES

    return MEASURES[measure][0]


def test_measures_are_pooled_like_the_raw_maps(report):
    """A long text's measure maps are block means computed as AttentionMap.pooled does."""
    amap = next(iter(report.maps.values()))
    weights = amap.dense()  # (1, H, T, T)
    p = AttentionPayload.from_values("x", tuple(report.tokens), ("l",), weights,
                                     measure="value-norms", max_cells=3)  # fmt: skip
    assert p.pool == 4 and p.maps.shape == (1, 4, 3, 3)
    torch.testing.assert_close(p.maps, amap.pooled(3))
    rollout = measure_payload(report, "rollout")
    assert rollout.maps.shape == (1, 1, T, T) and rollout.exact


@pytest.mark.slow
def test_demo_page_opens_on_layer_5_head_11_and_it(browser, tmp_path):
    from attnlab.viz.render import demo

    result = demo(tmp_path)
    best = result.top_heads[0][0]
    assert (best.layer, best.head) == (5, 11)
    page, errors = open_page(browser, tmp_path / "attention.html")
    assert page.input_value("#layer") == "5" and page.input_value("#head") == "11"
    assert page.locator("svg.headview").count() == 2
    for n in range(2):  # both sentences focus "it"
        panel = page.locator("svg.headview").nth(n)
        assert panel.locator("text.active").all_text_contents() == ["it"]
        assert panel.locator("line.strong").count() > 0
    assert int(page.locator("svg.headview").nth(0).get_attribute("data-links")) > 0
    assert errors == []
