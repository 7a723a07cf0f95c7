"""The walk's numbers against independent references: the model's own hidden states and
attention weights (Hugging Face ``output_hidden_states``, attnlab hook points, capture), and each
variant against a softmax written here from the hooked queries and keys."""

import math

import pytest
import torch

import attnlab
from attnlab.explain import explain
from attnlab.explain.load import load_explainable

from .conftest import SENTENCE, WordTokenizer, small_gpt

WORDS = ["the", "cat", "sat", "on", "a", "mat", "and", "then", "it", "slept"]


def gpt_and_tokenizer(positional="learned"):
    tok = WordTokenizer(WORDS)
    return small_gpt(tok.vocab_size, positional), tok


@pytest.mark.parametrize("layer", [0, 5])
def test_minilm_final_vector_is_the_models_hidden_state(minilm, layer):
    model, tokenizer = minilm
    e = explain(SENTENCE, layer=layer)
    with torch.no_grad():
        out = model(**tokenizer(SENTENCE, return_tensors="pt"), output_hidden_states=True)
    assert e.final.shape == (14, 384)
    torch.testing.assert_close(e.final, out.hidden_states[layer + 1][0], atol=1e-5, rtol=0)


def test_minilm_weights_are_the_captured_weights():
    layer = 3
    e = explain(SENTENCE, layer=layer)
    exact = attnlab.inspect(SENTENCE).weights(layer)  # (H, T, T), from the flash kernel's lse
    torch.testing.assert_close(e.variants[e.model_variant.key]["weights"], exact, atol=1e-5,
                               rtol=0)  # fmt: skip


@pytest.mark.parametrize("positional", ["learned", "sinusoidal"])
@pytest.mark.parametrize("layer", [0, 1])
def test_gpt_final_vector_and_weights_are_the_models(positional, layer):
    model, tok = gpt_and_tokenizer(positional)
    text = "the cat sat on a mat and then it slept"
    e = explain(text, model=model, tokenizer=tok, layer=layer)
    ids = torch.tensor([tok.encode(text)])
    with torch.no_grad():
        out, cache = attnlab.run_with_cache(model, ids, need_weights=True)
    torch.testing.assert_close(e.final, cache[f"layers.{layer}.hook_resid_post"][0], atol=1e-5,
                               rtol=0)  # fmt: skip
    own = e.variants["s1m1"]["weights"]
    torch.testing.assert_close(own, out.attentions[layer][0], atol=1e-6, rtol=0)
    assert e.start["token"] == len(WORDS) - 1  # default: the last token


@pytest.mark.parametrize("layer", [0, 1])
def test_gpt_from_hugging_face_gpt2_final_vector_is_hf_hidden_state(layer):
    """An outside reference: a small random GPT2LMHeadModel, converted with GPT.from_hf; the
    walk's output of layer 0 and 1 (of 3) is Hugging Face's own hidden_states[layer + 1] (not
    the last layer's: Hugging Face applies ln_f to it)."""
    import transformers

    torch.manual_seed(0)
    config = transformers.GPT2Config(vocab_size=len(WORDS), n_positions=16, n_embd=32, n_layer=3,
                                     n_head=4, resid_pdrop=0, embd_pdrop=0, attn_pdrop=0)  # fmt: skip
    hf = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():  # larger weights: attention far from uniform; every norm its own
        for p in hf.parameters():
            p.mul_(4) if p.dim() == 2 else p.add_(0.3 * torch.randn_like(p))
    tok = WordTokenizer(WORDS)
    text = "the cat sat on a mat and then it slept"
    e = explain(text, model=attnlab.GPT.from_hf(hf), tokenizer=tok, layer=layer)
    with torch.no_grad():
        out = hf(torch.tensor([tok.encode(text)]), output_hidden_states=True)
    torch.testing.assert_close(e.final, out.hidden_states[layer + 1][0], atol=1e-5, rtol=0)
    torch.testing.assert_close(e.fixed["x"], out.hidden_states[layer][0], atol=1e-5, rtol=0)


def test_a_fixed_sinusoidal_table_shows_its_scale():
    from attnlab.functional.positional import sinusoidal_table

    model, tok = gpt_and_tokenizer("sinusoidal")
    e = explain("the cat sat", model=model, tokenizer=tok)
    assert e.anatomy.position_scale == pytest.approx(0.02 * math.sqrt(2), rel=1e-6)
    torch.testing.assert_close(e.fixed["position"],
                               e.anatomy.position_scale * sinusoidal_table(3, 32))  # fmt: skip
    learned, _ = gpt_and_tokenizer("learned")
    assert explain("the cat", model=learned, tokenizer=tok).anatomy.position_scale is None


def test_variants_are_the_softmax_of_the_hooked_queries_and_keys():
    """No scaling: softmax(q·kᵀ) with the causal mask; no mask: softmax(q·kᵀ/√d_h) over all keys."""
    model, tok = gpt_and_tokenizer()
    text = " ".join(WORDS)
    e = explain(text, model=model, tokenizer=tok, layer=1)
    with torch.no_grad():
        _, cache = attnlab.run_with_cache(model, torch.tensor([tok.encode(text)]))
    q, k = cache["layers.1.self_attn.hook_q"][0], cache["layers.1.self_attn.hook_k"][0]
    T, d_h = q.shape[1], q.shape[2]
    scores = torch.einsum("htd,hsd->hts", q.double(), k.double())
    future = torch.ones(T, T, dtype=torch.bool).triu(1)
    unscaled = torch.softmax(scores.masked_fill(future, -math.inf), -1)
    unmasked = torch.softmax(scores / math.sqrt(d_h), -1)
    torch.testing.assert_close(e.variants["s0m1"]["weights"].double(), unscaled, atol=1e-5, rtol=0)
    torch.testing.assert_close(e.variants["s1m0"]["weights"].double(), unmasked, atol=1e-5, rtol=0)
    torch.testing.assert_close(e.fixed["scores"].double(), scores, atol=1e-4, rtol=1e-5)
    assert (e.variants["s1m1"]["masked"][:, future] == -math.inf).all()
    assert torch.isfinite(e.variants["s1m0"]["masked"]).all()


def test_a_bert_family_folder_works(tmp_path):
    from tests.inspection.model_folders import save_model_folder

    reference, tokenizer = save_model_folder("bert", tmp_path / "bert")
    model, loaded_tokenizer, name = load_explainable(tmp_path / "bert")
    e = explain("the cat sat", model=model, tokenizer=loaded_tokenizer, layer=1, model_name=name)
    with torch.no_grad():
        out = reference(**tokenizer("the cat sat", return_tensors="pt"), output_hidden_states=True)
    torch.testing.assert_close(e.final, out.hidden_states[2][0], atol=1e-5, rtol=0)
    assert e.model_name == "bert"


def test_other_architectures_are_refused_by_name_before_loading(tmp_path, monkeypatch):
    from tests.inspection.model_folders import save_model_folder

    from attnlab.inspection import pretrained

    save_model_folder("gpt2", tmp_path / "gpt2")
    monkeypatch.setattr(pretrained, "load_folder", lambda *a: pytest.fail("weights were loaded"))
    with pytest.raises(ValueError, match="holds a 'gpt2' model; explain supports the bundled "
                       "all-MiniLM-L6-v2 \\(default\\), BERT-family"):  # fmt: skip
        load_explainable(tmp_path / "gpt2")


def test_an_unsupported_model_object_is_refused_by_name():
    with pytest.raises(ValueError, match="does not know the layout of Linear; it supports"):
        explain("the cat", model=torch.nn.Linear(2, 2), tokenizer=WordTokenizer(["the", "cat"]))


def test_bad_requests_name_what_is_allowed():
    model, tok = gpt_and_tokenizer()
    with pytest.raises(ValueError, match=r"^layer must lie in \[0, 1\] for this model; got 2$"):
        explain("the cat", model=model, tokenizer=tok, layer=2)
    with pytest.raises(ValueError, match=r"^head must lie in \[0, 3\] for this model; got 4$"):
        explain("the cat", model=model, tokenizer=tok, head=4)
    with pytest.raises(ValueError, match=r"^position must lie in \[0, 1\] for this text; got 2"):
        explain("the cat", model=model, tokenizer=tok, position=2)
    with pytest.raises(ValueError, match=r"^token 'dog' is not in the text; its tokens "
                       r"\(position, token\) are \[\(0, 'the'\), \(1, 'cat'\)\]$"):  # fmt: skip
        explain("the cat", model=model, tokenizer=tok, token="dog")
    with pytest.raises(ValueError, match="^give token or position, not both; got 'cat' and 1$"):
        explain("the cat", model=model, tokenizer=tok, token="cat", position=1)
    with pytest.raises(ValueError, match="^pitfall must be one of"):
        explain("the cat", model=model, tokenizer=tok, pitfall="softmax")
    encoder = small_gpt(len(WORDS), causal=False)
    with pytest.raises(ValueError, match=r"^pitfall mask needs a causal model \(model: an "
                       "attnlab GPT\\); in an encoder such as GPT every token"):  # fmt: skip
        explain("the cat", model=encoder, tokenizer=tok, pitfall="mask")


@pytest.mark.parametrize(("argument", "value"), [
    ("head", 1.5), ("head", -1), ("head", "0"), ("layer", True), ("layer", "1"), ("layer", None),
    ("position", 0.0), ("position", False),
])  # fmt: skip
def test_arguments_of_the_wrong_type_name_the_argument_expected_and_given(argument, value,
                                                                           monkeypatch):  # fmt: skip
    """Refused at the top of explain(), before any model loads (the default MiniLM included)."""
    from attnlab.inspection import pretrained

    monkeypatch.setattr(pretrained, "load_minilm", lambda: pytest.fail("a model was loaded"))
    with pytest.raises(ValueError) as err:
        explain("the cat", **{argument: value})
    assert str(err.value) == f"{argument} must be an integer >= 0; got {value!r}"


def test_a_bad_token_argument_is_named():
    for bad in ("", 3):
        with pytest.raises(ValueError, match=f"^token must be a non-empty text; got {bad!r}$"):
            explain("the cat", token=bad)
    # White space is a token of character models; MiniLM has none.
    with pytest.raises(ValueError, match="^token '  ' is not in the text"):
        explain("the cat", token="  ")


def test_a_text_longer_than_the_models_positions_is_refused_before_it_runs(monkeypatch):
    from attnlab.explain import anatomy

    model, tok = gpt_and_tokenizer()  # max_len 32
    monkeypatch.setattr(anatomy, "_gpt", lambda *a: pytest.fail("the model ran"))
    with pytest.raises(ValueError, match="^TEXT is 33 tokens; this model reads at most 32$"):
        explain(" ".join(["the"] * 33), model=model, tokenizer=tok)
    import transformers

    config = transformers.BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32,
                                     max_position_embeddings=8)  # fmt: skip
    bert = transformers.BertModel(config).eval()
    with pytest.raises(ValueError, match="^TEXT is 9 tokens; this model reads at most 8$"):
        explain(" ".join(["the"] * 9), model=bert, tokenizer=tok)
    wide = attnlab.GPT(attnlab.GPTConfig(vocab_size=len(WORDS), max_len=128, n_layers=1,
                                         n_heads=2, d_model=8))  # fmt: skip
    with pytest.raises(ValueError, match="^TEXT is 65 tokens long; explain walks at most 64"):
        explain(" ".join(["the"] * 65), model=wide, tokenizer=tok)


def test_a_bert_with_relative_positions_is_refused_by_name():
    import transformers

    config = transformers.BertConfig(vocab_size=30, hidden_size=16, num_hidden_layers=1,
                                     num_attention_heads=2, intermediate_size=32,
                                     position_embedding_type="relative_key")  # fmt: skip
    bert = transformers.BertModel(config).eval()
    with pytest.raises(ValueError, match="^explain walks BERT models with absolute positions; "
                       "this one has position_embedding_type='relative_key'$"):  # fmt: skip
        explain("the cat", model=bert, tokenizer=WordTokenizer(WORDS))


def test_tokens_are_chosen_by_position_or_by_their_cleaned_text(minilm):
    """WordPiece (##), a repeated word, a split word, a position; then a byte-level BPE (Ġ)."""
    from tests.inspection.model_folders import byte_tokenizer

    text = "the tokenization of the text"
    _, tokenizer = minilm
    tokens = tokenizer.tokenize(text)
    assert tokens == ["the", "token", "##ization", "of", "the", "text"]
    assert explain(text, token="##ization").start["token"] == 3  # [CLS] is position 0
    assert explain(text, token="ization").start["token"] == 3
    assert explain(text, position=5).start["token"] == 5
    with pytest.raises(ValueError, match=r"^token 'the' occurs at positions \[1, 5\]; choose "
                       "one with position$"):  # fmt: skip
        explain(text, token="the")
    with pytest.raises(ValueError, match=r"^token 'tokenization' is split by the tokenizer into "
                       r"\['token', '##ization'\] at positions 2…3; choose one piece"):  # fmt: skip
        explain(text, token="tokenization")
    bpe = byte_tokenizer()  # byte-level, with merges for " cat": Ġ marks a leading space
    bpe.backend_tokenizer.model = type(bpe.backend_tokenizer.model)(
        vocab={**bpe.get_vocab(), "Ġc": 256, "Ġca": 257, "Ġcat": 258},
        merges=[("Ġ", "c"), ("Ġc", "a"), ("Ġca", "t")])  # fmt: skip
    gpt = attnlab.GPT(attnlab.GPTConfig(vocab_size=259, max_len=64, n_layers=1, n_heads=2,
                                        d_model=8)).eval()  # fmt: skip
    e = explain("the cat sat", model=gpt, tokenizer=bpe, token="cat")
    assert e.tokens == ["t", "h", "e", "Ġcat", "Ġ", "s", "a", "t"] and e.start["token"] == 3
    assert explain("the cat sat", model=gpt, tokenizer=bpe, token="Ġcat").start["token"] == 3
    with pytest.raises(ValueError, match=r"^token 't' occurs at positions \[0, 7\]"):
        explain("the cat sat", model=gpt, tokenizer=bpe, token="t")


def test_shapes_pitfall_records_attnlabs_own_error():
    e = explain(SENTENCE, pitfall="shapes")
    assert e.shapes["message"] == (
        "q and k must share the last dimension d_k: q has 32, k has 384 "
        "(q (1, 12, 14, 32), k (1, 14, 384))"
    )
    assert e.start == {"token": 12, "head": 0, "scale": True, "mask": False, "pitfall": "shapes"}


def test_the_explanation_displays_inline_in_jupyter_as_an_isolated_page():
    import html

    model, tok = gpt_and_tokenizer()
    e = explain("the cat", model=model, tokenizer=tok)
    shown = e._repr_html_()
    assert shown.startswith('<iframe srcdoc="') and "height:720px" in shown
    assert html.unescape(shown.split('"')[1]) == e.render()
