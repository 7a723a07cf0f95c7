"""The explain page in real Chromium (Debian's, through playwright): every card, the final
vector against the model's own hidden state, toggles that change exactly the steps they reach,
escaping and no network. Numbers are read from the page (``window.attnlabExplain.values``, the
numbers each card shows)."""

import math

import pytest
import torch
from torch import Tensor

import attnlab
from attnlab.explain import explain

from .conftest import SENTENCE, WordTokenizer, open_page, small_gpt

pytestmark = pytest.mark.browser

CARDS = ["tokens", "embeddings", "layer_input", "qkv", "scores", "scaling", "mask", "softmax",
         "weighted_sum", "concat", "w_o", "residual_norm", "feed_forward", "final"]  # fmt: skip
BEFORE_SCALING = {"tokens", "embeddings", "layer_input", "qkv", "scores"}
LAYER = 2
WORDS = ["the", "cat", "sat", "on", "a", "mat", "and", "then"]


@pytest.fixture(scope="module")
def minilm_page(tmp_path_factory, minilm):
    path = tmp_path_factory.mktemp("explain") / "explain.html"
    explain(SENTENCE, layer=LAYER, head=3, token="it").save(path)
    model, tokenizer = minilm
    with torch.no_grad():
        out = model(**tokenizer(SENTENCE, return_tensors="pt"), output_hidden_states=True)
    return path, out.hidden_states[LAYER + 1][0], out.hidden_states


@pytest.fixture(scope="module")
def gpt_page(tmp_path_factory):
    tok = WordTokenizer(WORDS)
    path = tmp_path_factory.mktemp("explain") / "gpt.html"
    explain(" ".join(WORDS), model=small_gpt(tok.vocab_size), tokenizer=tok, layer=1,
            token="cat").save(path)  # fmt: skip
    return path


def values(page) -> dict[str, dict[str, list]]:
    """Every card's numbers as the page shows them now."""
    return page.evaluate("Object.fromEntries(attnlabExplain.cards().map("
                         "(c) => [c, attnlabExplain.values(c)]))")  # fmt: skip


def changed_cards(before, after) -> set[str]:
    return {c for c in before if before[c] != after[c]}


def marked_cards(page) -> set[str]:
    return set(page.eval_on_selector_all("section.card[data-changed='1']",
                                         "els => els.map(e => e.dataset.card)"))  # fmt: skip


def test_every_card_is_on_the_page_in_order(browser, minilm_page):
    page, errors = open_page(browser, minilm_page[0])
    assert page.eval_on_selector_all("section.card", "els => els.map(e => e.dataset.card)") == CARDS
    for card in page.locator("section.card").all():
        assert card.locator("h2").inner_text() and card.locator(".formula").inner_text()
    assert "(T, D) = (14, 384) → (T, H, d_h) = (14, 12, 32)" in page.inner_text("[data-card=qkv]")
    assert "12×32 → 384" in page.inner_text("[data-card=concat]")
    assert page.evaluate("attnlabExplain.state()") == {"token": 10, "head": 3, "scale": True,
                                                        "mask": False}  # fmt: skip
    assert errors == []


def test_final_vector_is_the_models_hidden_state(browser, minilm_page):
    path, hidden, _ = minilm_page
    page, errors = open_page(browser, path)
    for token in (10, 2):  # "it" (the page's start), then "animal", chosen by a click
        if token != 10:
            page.locator("[data-card=tokens] button.tok").nth(token).click()
        assert page.evaluate("attnlabExplain.state().token") == token
        shown = torch.tensor(page.evaluate("attnlabExplain.values('final').out"))
        torch.testing.assert_close(shown, hidden[token], atol=1e-5, rtol=0)
        assert "= the model's own hidden state" in page.inner_text(".check")
    assert errors == []


def test_removing_the_scaling_changes_exactly_the_steps_after_it(browser, minilm_page):
    page, errors = open_page(browser, minilm_page[0])
    before = values(page)
    page.click("#toggle-scale")
    after = values(page)
    assert changed_cards(before, after) == set(CARDS) - BEFORE_SCALING
    assert marked_cards(page) == set(CARDS) - BEFORE_SCALING
    scores = before["scores"]["q·k"]
    assert after["scaling"]["scaled"] == scores  # unscaled: the raw q·k
    assert before["scaling"]["scaled"] == pytest.approx([s / math.sqrt(32) for s in scores],
                                                         rel=1e-5)  # fmt: skip
    assert max(after["softmax"]["α"]) > max(before["softmax"]["α"])  # sharper
    assert "≠ the model's own hidden state" in page.inner_text(".check")
    page.click("#toggle-scale")
    assert values(page) == before and marked_cards(page) == set()
    assert errors == []


def test_choosing_a_head_or_a_token_updates_every_card(browser, minilm_page):
    """A head changes its own steps up to the weighted sum and which slice of the concatenation
    is its; the steps after the concatenation use every head. A token changes every step."""
    page, errors = open_page(browser, minilm_page[0])
    before = values(page)
    page.select_option("#head", "7")
    assert changed_cards(before, values(page)) == {"qkv", "scores", "scaling", "mask", "softmax",
                                                   "weighted_sum"}  # fmt: skip
    highlighted = page.eval_on_selector_all(
        "[data-card=concat] .cell",
        "els => els.flatMap((e, n) => e.classList.contains('hl') ? [n] : [])",
    )
    assert highlighted == list(range(7 * 32, 8 * 32))
    before = values(page)
    page.locator("[data-card=tokens] button.tok").nth(4).click()
    assert changed_cards(before, values(page)) == set(CARDS) - {"tokens"}
    assert page.locator("button.tok.chosen").inner_text() == "'"
    assert errors == []


@torch.no_grad()
def eager_layer(minilm, hidden_states, token: int, head: int) -> dict[str, dict[str, Tensor]]:
    """Every card's vectors for ``token`` and ``head``, computed independently of explain: from
    the model's own modules and its hidden state before the layer (as Hugging Face's eager
    BERT layer computes it), the softmax row from :func:`attnlab.inspect`'s exact capture."""
    model, tokenizer = minilm
    i, h = token, head
    ids = tokenizer(SENTENCE)["input_ids"]
    emb, block = model.embeddings, model.encoder.layer[LAYER]
    H = model.config.num_attention_heads
    dh = model.config.hidden_size // H
    cols = slice(h * dh, (h + 1) * dh)
    x = hidden_states[LAYER][0]  # (T, D): the layer's input
    sa = block.attention.self
    q, k, v = sa.query(x), sa.key(x), sa.value(x)  # (T, D)
    scores = k[:, cols] @ q[i, cols]  # (T,)
    weights = torch.softmax(scores / math.sqrt(dh), dim=-1)
    captured = attnlab.inspect(SENTENCE).weights(LAYER, h)[i]
    torch.testing.assert_close(weights, captured, atol=1e-5, rtol=0)
    concat = torch.cat([torch.softmax(k[:, n * dh : (n + 1) * dh] @ q[i, n * dh : (n + 1) * dh]
                                      / math.sqrt(dh), -1) @ v[:, n * dh : (n + 1) * dh]
                        for n in range(H)])  # fmt: skip
    o = block.attention.output.dense(concat)
    resid = block.attention.output.LayerNorm(x[i] + o)
    ff_hidden = block.intermediate(resid)
    ff_out = block.output.dense(ff_hidden)
    token_e, position = emb.word_embeddings.weight[ids[i]], emb.position_embeddings.weight[i]
    token_type = emb.token_type_embeddings.weight[0]
    total = token_e + position + token_type
    return {
        "tokens": {"ids": torch.tensor(ids, dtype=torch.float32)},
        "embeddings": {"token embedding E[id]": token_e, "position": position,
                       "token type": token_type, "sum": total,
                       "LayerNorm(sum)": emb.LayerNorm(total)},
        "layer_input": {"x": x[i]},
        "qkv": {f"q (token {i}, head {h})": q[i, cols], f"k (token {i}, head {h})": k[i, cols],
                f"v (token {i}, head {h})": v[i, cols]},
        "scores": {"q·k": scores},
        "scaling": {"scaled": scores / math.sqrt(dh)},
        "mask": {"masked": scores / math.sqrt(dh)},
        "softmax": {"α": captured},
        "weighted_sum": {"z": weights @ v[:, cols]},
        "concat": {"concat": concat},
        "w_o": {"o": o},
        "residual_norm": {"h": resid},
        "feed_forward": {"hidden act(h·W_1 + b_1)": ff_hidden, "f = hidden·W_2 + b_2": ff_out},
        "final": {"out": hidden_states[LAYER + 1][0][i]},
    }  # fmt: skip


def test_another_head_and_token_show_the_models_own_numbers_on_every_card(browser, minilm,
                                                                          minilm_page):  # fmt: skip
    """Head 7 and token 2, chosen with the page's controls: every vector of every card equals
    the same slice of an independent eager computation of the layer (and of attnlab.inspect's
    softmax row), to 1e-5."""
    path, _, hidden_states = minilm_page
    page, errors = open_page(browser, path)
    page.select_option("#head", "7")
    page.locator("[data-card=tokens] button.tok").nth(2).click()
    assert page.evaluate("attnlabExplain.state()") == {"token": 2, "head": 7, "scale": True,
                                                        "mask": False}  # fmt: skip
    shown = values(page)
    expected = eager_layer(minilm, hidden_states, token=2, head=7)
    assert list(shown) == CARDS and {c: list(v) for c, v in shown.items()} == {
        c: list(v) for c, v in expected.items()}  # fmt: skip
    for card, vectors in expected.items():
        for label, want in vectors.items():
            got = torch.tensor(shown[card][label], dtype=torch.float32)
            torch.testing.assert_close(got, want.float(), atol=1e-5, rtol=0,
                                       msg=lambda m, c=card, n=label: f"{c} / {n}: {m}")  # fmt: skip
    assert errors == []


def test_removing_the_causal_mask_lets_future_keys_in_and_changes_only_later_steps(
    browser, gpt_page
):
    page, errors = open_page(browser, gpt_page)
    i = 1  # "cat": one key before it, six after
    before = values(page)
    assert page.is_checked("#toggle-mask")
    page.click("#toggle-mask")
    after = values(page)
    assert changed_cards(before, after) == {"mask", "softmax", "weighted_sum", "concat", "w_o",
                                            "residual_norm", "feed_forward", "final"}  # fmt: skip
    masked_before, masked_after = before["mask"]["masked"], after["mask"]["masked"]
    assert masked_before[i + 1 :] == ["-Infinity"] * 6
    assert masked_after[: i + 1] == masked_before[: i + 1]  # visible keys: the same scores
    assert masked_after[i + 1 :] == after["scaling"]["scaled"][i + 1 :]  # future keys: let in
    w_before, w_after = before["softmax"]["α"], after["softmax"]["α"]
    assert w_before[i + 1 :] == [0] * 6 and all(w > 0 for w in w_after[i + 1 :])
    # The last token has no future: without the mask nothing changes for it.
    page.locator("[data-card=tokens] button.tok").last.click()
    last_unmasked = values(page)
    page.click("#toggle-mask")
    assert values(page) == last_unmasked and marked_cards(page) == set()
    assert errors == []


def test_the_sinusoidal_table_states_its_scale(browser, tmp_path):
    tok = WordTokenizer(WORDS)
    path = tmp_path / "sinusoidal.html"
    model = small_gpt(tok.vocab_size, "sinusoidal")
    explain(" ".join(WORDS), model=model, tokenizer=tok).save(path)
    page, errors = open_page(browser, path)
    text = page.inner_text("[data-card=embeddings] .formula")
    assert "s·PE" in text and "s = 0.02828 = 0.02·√2" in text
    assert errors == []


def test_hostile_text_is_shown_as_text_and_never_runs(browser, tmp_path):
    words = ["<script>alert(1)</script>", "</script><img/src=x/onerror=alert(2)>", "&amp;", "a"]
    tok = WordTokenizer(words)
    path = tmp_path / "hostile.html"
    explain(" ".join(words), model=small_gpt(tok.vocab_size), tokenizer=tok,
            model_name="<b onmouseover=alert(3)>m</b>").save(path)  # fmt: skip
    page, errors = open_page(browser, path)
    assert page.locator("button.tok").all_inner_texts() == words
    assert page.evaluate("document.querySelectorAll('img, b').length") == 0
    assert page.evaluate("document.scripts.length") == 2  # the data and the page's script
    assert page.inner_text("h1") == "attnlab explain: <b onmouseover=alert(3)>m</b>, layer 0"
    keys = page.locator("[data-card=scores] td.tok").all_inner_texts()
    assert keys == words
    assert errors == []  # an alert would be a dialog, collected as an error


def test_the_page_makes_no_network_request(browser, minilm_page):
    page = browser.new_page()
    requests = []
    page.on("request", lambda r: requests.append(r.url))
    page.goto(minilm_page[0].as_uri())
    page.wait_for_selector("body[data-rendered]")
    page.select_option("#head", "1")
    page.click("#toggle-scale")
    page.locator("[data-card=scaling] input[type=range]").fill("10")
    assert requests == [minilm_page[0].as_uri()]


def test_the_dk_slider_shows_the_unscaled_softmax_saturating(browser, minilm_page):
    page, errors = open_page(browser, minilm_page[0])
    slider = page.locator("[data-card=scaling] input[type=range]")

    def maxima():
        lines = page.locator(".dk-line .label").all_inner_texts()
        return [float(t.rsplit("max ", 1)[1]) for t in lines]  # [scaled, unscaled]

    slider.fill("0")
    small = maxima()
    slider.fill("10")  # d_k = 1024
    scaled, unscaled = maxima()
    assert unscaled == 1.0 and scaled < 0.9 and small[1] < 0.9
    assert "d_k = 1024" in page.inner_text(".dk-out")
    assert errors == []


@pytest.mark.parametrize("pitfall", ["scaling", "mask", "shapes"])
def test_pitfall_pages_open_with_the_mistake_next_to_the_correct_numbers(browser, tmp_path,
                                                                         pitfall):  # fmt: skip
    tok = WordTokenizer(WORDS)
    path = tmp_path / f"{pitfall}.html"
    e = explain(" ".join(WORDS), model=small_gpt(tok.vocab_size), tokenizer=tok, pitfall=pitfall)
    e.save(path)
    page, errors = open_page(browser, path)
    assert "Pitfall:" in page.inner_text("#pitfall")
    state = page.evaluate("attnlabExplain.state()")
    assert (state["scale"], state["mask"]) == {"scaling": (False, True), "mask": (True, False),
                                               "shapes": (True, True)}[pitfall]  # fmt: skip
    if pitfall == "shapes":
        assert page.inner_text("[data-card=qkv] pre.error") == f"ValueError: {e.shapes['message']}"
        assert "k has 32" in e.shapes["message"] and marked_cards(page) == set()
    else:
        assert "final" in marked_cards(page)  # the mistake reaches the layer's output
        assert "the model's own:" in page.inner_text("[data-card=final]")
    assert errors == []
