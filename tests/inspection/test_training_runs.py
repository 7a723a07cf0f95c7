"""`attnlab train`'s runs as models to inspect (attnlab.inspection.runs): the loader, the run's
tokenizers behind a Hugging Face face, and inspect / generate on a GPT run and a translation
run. Every weight is checked against softmax(q·kᵀ/√d_h) computed here from the queries and keys
the model's own hook points give, on a model read by attnlab.models.checkpoint.load_model and
ids made by the run's own tokenizers (and, for translation, by the training task's collate)."""

from __future__ import annotations

import json
import math

import pytest
import torch
from hypothesis import example, given, settings
from hypothesis import strategies as st

import attnlab
from attnlab.data.tokenizers import tokenizer_from_json
from attnlab.inspection.pretrained import load_model_path, model_name
from attnlab.inspection.report import generate, inspect
from attnlab.inspection.run_tokenizers import hf_tokenizer
from attnlab.inspection.runs import SourceTarget, run_checkpoint
from attnlab.models.checkpoint import load_model
from attnlab.models.encoder_decoder import EncoderDecoder
from attnlab.models.gpt import GPT
from attnlab.train.checkpoint import load_training
from attnlab.train.tasks import collate

from .training_runs import ALPHABET, ENGLISH, SPANISH, lm_run, translation_run

TEXT = "ROMEO:\nBut, soft! what light through yonder window breaks?"
SOURCE, TARGET = ENGLISH[0], SPANISH[0]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("runs")
    return {"lm": lm_run(root / "shk"), "translate": translation_run(root / "tr")}


def run_tokenizers(checkpoint):
    """The run's own attnlab tokenizers, read from its training state."""
    data = load_training(checkpoint).tokenizer_json
    if "src" not in json.loads(data):
        return tokenizer_from_json(data)
    both = json.loads(data)
    return tokenizer_from_json(both["src"]), tokenizer_from_json(both["tgt"])


def eager(q, k, causal: bool):
    """softmax(q·kᵀ/√d_h) (B, H, T, S), future keys masked when ``causal``."""
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.shape[-1])
    if causal:
        T, S = scores.shape[-2:]
        scores = scores.masked_fill(torch.ones(T, S).triu(S - T + 1).bool(), float("-inf"))
    return scores.softmax(-1)[0]


def hooked_weights(model, *inputs, layers: dict[str, bool]):
    """{layer name: eager weights (H, T, S)} from the q and k its hook points report; ``layers``:
    layer name → causal."""
    names = [f"{n}.hook_{x}" for n in layers for x in "qk"]
    _, cache = attnlab.run_with_cache(model, *inputs, names=names)
    return {n: eager(cache[f"{n}.hook_q"], cache[f"{n}.hook_k"], c) for n, c in layers.items()}


# --- the tokenizers' Hugging Face faces --------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=ALPHABET, min_size=1, max_size=80))
@example("ROMEO:\n\nJULIET:\n  Ay me!\n")  # runs of newlines and spaces: one token each
def test_the_char_face_round_trips_any_text_of_its_alphabet(text):
    chars = tokenizer_from_json(json.dumps({"kind": "char", "chars": list(ALPHABET)}))
    face = hf_tokenizer(chars)
    ids = face(text)["input_ids"]
    assert ids == chars.encode(text)
    assert face.convert_ids_to_tokens(ids) == list(text)
    assert face.convert_tokens_to_string(list(text)) == text
    assert face.decode(ids) == text


def test_the_char_face_refuses_characters_outside_the_runs_alphabet():
    face = hf_tokenizer(tokenizer_from_json(json.dumps({"kind": "char", "chars": list("ab ")})))
    with pytest.raises(ValueError, match=r"characters not in the vocabulary: \['c', 'é'\]"):
        face("a bé c")
    with pytest.raises(ValueError, match=r"\['z'\]"):
        face(text_target="zz")


def test_the_bpe_face_gives_the_runs_ids_and_special_tokens(runs):
    source, target = run_tokenizers(runs["translate"])
    for tok, text in ((source, SOURCE), (target, TARGET)):
        face = hf_tokenizer(tok)
        assert face(text)["input_ids"] == tok.encode(text)  # no special token added
        assert face(text_target=text)["input_ids"] == tok.encode(text)
        assert (face.pad_token_id, face.bos_token_id, face.eos_token_id) == (
            tok.pad_id, tok.bos_id, tok.eos_id)  # fmt: skip
        assert face.decode(tok.encode(text)) == tok.decode(tok.encode(text))


# --- the loader ---------------------------------------------------------------------------------


def test_a_run_is_named_by_its_checkpoint_or_its_folder(runs, tmp_path):
    checkpoint = runs["lm"]
    assert run_checkpoint(checkpoint) == checkpoint
    assert run_checkpoint(checkpoint.parent) == checkpoint
    assert model_name(checkpoint) == model_name(checkpoint.parent) == "shk"
    folder = tmp_path / "both"  # a model folder that also holds a checkpoint is a model folder
    folder.mkdir()
    (folder / "checkpoint.safetensors").write_bytes(checkpoint.read_bytes())
    (folder / "model.safetensors").write_bytes(b"")
    assert run_checkpoint(folder) is None
    model, tokenizer = load_model_path(checkpoint.parent)
    assert isinstance(model, GPT) and not model.training
    model, tokenizer = load_model_path(runs["translate"])
    assert isinstance(model, EncoderDecoder) and isinstance(tokenizer, SourceTarget)


# --- a language-model run -----------------------------------------------------------------------


def test_inspecting_an_lm_run_is_the_gpts_own_attention(runs):
    model, tokenizer = load_model_path(runs["lm"])
    report = inspect(TEXT, model=model, tokenizer=tokenizer)
    assert report.tokens == list(TEXT)  # characters, the newline and spaces included
    reference = load_model(runs["lm"])
    ids = torch.tensor([[ALPHABET.index(c) for c in TEXT]])
    layers = {f"layers.{i}.self_attn": True for i in range(len(reference.layers))}
    expected = hooked_weights(reference, ids, layers=layers)
    assert list(report.maps) == list(layers)
    for i, name in enumerate(layers):
        torch.testing.assert_close(report.weights(i), expected[name], atol=1e-5, rtol=0)


def test_generating_with_an_lm_run_is_its_own_greedy_continuation(runs):
    model, tokenizer = load_model_path(runs["lm"])
    prompt, n = "ROMEO:\n", 12
    report = generate(prompt, model=model, tokenizer=tokenizer, max_new_tokens=n)
    reference = load_model(runs["lm"])
    ids = torch.tensor([[ALPHABET.index(c) for c in prompt]])
    with torch.no_grad():
        for _ in range(n):  # greedy, every step a full forward pass (no cache)
            ids = torch.cat((ids, reference(ids).logits[:, -1].argmax(-1, keepdim=True)), 1)
    new = [ALPHABET[i] for i in ids[0, len(prompt) :].tolist()]
    assert report.generated == new
    assert report.tokens == list(prompt) + new[:-1]  # the last new token is never fed back
    fed = ids[:, :-1]
    expected = hooked_weights(reference, fed, layers={"layers.1.self_attn": True})
    torch.testing.assert_close(report.weights(1), expected["layers.1.self_attn"], atol=1e-5,
                               rtol=0)  # fmt: skip


# --- a translation run --------------------------------------------------------------------------


def translation_batch(checkpoint, source: str, target: str):
    """The model inputs the training task builds for (source, target) with the run's own
    tokenizers: the source's ids alone, the target's after <bos>."""
    src, tgt = run_tokenizers(checkpoint)
    batch = collate([(src.encode(source), tgt.encode(target))], src, tgt)
    return src, tgt, batch["src_ids"], batch["tgt_ids"]


def test_inspecting_a_translation_run_follows_its_training_inputs(runs):
    model, tokenizer = load_model_path(runs["translate"])
    report = inspect(SOURCE, model=model, tokenizer=tokenizer, target=TARGET)
    src, tgt, src_ids, tgt_ids = translation_batch(runs["translate"], SOURCE, TARGET)
    assert report.tokens == [src.backend.id_to_token(i) for i in src_ids[0].tolist()]
    assert report.target_tokens == [tgt.backend.id_to_token(i) for i in tgt_ids[0].tolist()]
    assert report.target_tokens[0] == "<bos>"
    reference = load_model(runs["translate"])
    n = len(reference.decoder.layers)
    layers = {**{f"encoder.layers.{i}.self_attn": False for i in range(n)},
              **{f"decoder.layers.{i}.self_attn": True for i in range(n)},
              **{f"decoder.layers.{i}.cross_attn": False for i in range(n)}}  # fmt: skip
    expected = hooked_weights(reference, src_ids, tgt_ids, layers=layers)
    assert {n: report.role(n) for n in report.maps} == {
        n: n.split(".")[0] if "self_attn" in n else "cross" for n in layers}  # fmt: skip
    T, S = tgt_ids.shape[1], src_ids.shape[1]
    for name in layers:
        weights = report.maps[name].dense()[0]
        if report.role(name) == "cross":
            assert weights.shape[-2:] == (T, S) and report.axes(name) == (
                report.target_tokens, report.tokens)  # fmt: skip
        torch.testing.assert_close(weights, expected[name], atol=1e-4, rtol=0)


def test_translating_with_a_run_is_its_own_greedy_translation(runs):
    model, tokenizer = load_model_path(runs["translate"])
    report = generate(SOURCE, model=model, tokenizer=tokenizer, max_new_tokens=10)
    _, tgt, src_ids, _ = translation_batch(runs["translate"], SOURCE, TARGET)
    reference = load_model(runs["translate"])
    out = [tgt.bos_id]
    with torch.no_grad():
        while len(out) <= 10 and out[-1] != tgt.eos_id:  # greedy, full forward passes
            logits = reference(src_ids, torch.tensor([out])).logits[0, -1]
            out.append(int(logits.argmax()))
    tokens = [tgt.backend.id_to_token(i) for i in out]
    assert report.generated == tokens[1:]
    assert report.target_tokens == tokens[:-1]
    assert report.target == tgt.decode(out[1:])
    cross = report.maps["decoder.layers.1.cross_attn"].dense()[0]
    assert cross.shape[-2:] == (len(out) - 1, src_ids.shape[1])
    expected = hooked_weights(reference, src_ids, torch.tensor([out[:-1]]),
                              layers={"decoder.layers.1.cross_attn": False})  # fmt: skip
    torch.testing.assert_close(cross, expected["decoder.layers.1.cross_attn"], atol=1e-4, rtol=0)
    steps = report.generation_steps(top=1)
    assert [token for token, _ in steps] == tokens[1:]
    assert all(key in report.tokens for _, top in steps for key, _, _ in top)


def test_a_translation_that_ends_keeps_eos_in_its_tokens_not_in_its_text(runs):
    """A model that ends its translation after two tokens (a bias towards <eos> from the third
    step on): the report lists <eos> as the last generated token; its target text leaves it
    out, as the run's tokenizer decodes."""
    model, tokenizer = load_model_path(runs["translate"])
    _, tgt, _, _ = translation_batch(runs["translate"], SOURCE, TARGET)
    calls = []

    def ending(module, inputs, logits):
        calls.append(1)
        if len(calls) > 2:
            logits[..., tgt.eos_id] += 1e4
        return logits

    model.output.register_forward_hook(ending)
    report = generate(SOURCE, model=model, tokenizer=tokenizer, max_new_tokens=10)
    assert len(report.generated) == 3 and report.generated[-1] == "<eos>"
    ids = [tgt.backend.token_to_id(t) for t in report.generated]
    assert report.target == tgt.decode(ids) and "<eos>" not in report.target
