"""attnlab.inspect and the report on any local Hugging Face folder: the loader picks the model
class from the config; encoder–decoder reports order and name their layers by role."""

from __future__ import annotations

import pytest

import attnlab
from attnlab.inspection.pretrained import load_folder
from attnlab.viz.payload import AttentionPayload

from .model_folders import save_model_folder


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    for name in ("llama", "bert", "bart"):
        save_model_folder(name, root / name)
    return root


@pytest.mark.parametrize(
    ("name", "cls"),
    [("llama", "LlamaForCausalLM"), ("bert", "BertModel"), ("bart", "BartForConditionalGeneration")],
)  # fmt: skip
def test_load_folder_picks_the_class_from_the_config(folders, name, cls):
    model, tokenizer = load_folder(folders / name)
    assert type(model).__name__ == cls and not model.training
    assert tokenizer("a b")["input_ids"]


def test_encoder_decoder_report_layers_by_role(folders):
    model, tokenizer = load_folder(folders / "bart")
    report = attnlab.inspect("the cat", model=model, tokenizer=tokenizer, target="le")
    labels = [report.label(name) for name in report.layers]
    assert labels == ["encoder  0", "encoder  1", "decoder  0", "decoder  1", "cross  0",
                      "cross  1"]  # fmt: skip
    cross = report.layers[-1]
    assert report.axes(cross) == (report.target_tokens, report.tokens)
    assert report.maps[cross].shape[2:] == (len(report.target_tokens), len(report.tokens))
    with pytest.raises(ValueError, match="pass role=..., or use AttentionPayload.panels"):
        AttentionPayload.from_report(report)
    assert [p.role for p in AttentionPayload.panels(report)] == ["encoder", "decoder", "cross"]


def test_without_target_the_decoder_sees_its_start_token(folders):
    model, tokenizer = load_folder(folders / "bart")
    report = attnlab.inspect("the cat", model=model, tokenizer=tokenizer)
    assert report.target_tokens == tokenizer.convert_ids_to_tokens(
        [model.config.decoder_start_token_id]
    )


def test_generation_steps_need_a_generation_report(folders):
    model, tokenizer = load_folder(folders / "llama")
    report = attnlab.inspect("the cat", model=model, tokenizer=tokenizer)
    with pytest.raises(ValueError, match="no generated tokens"):
        report.generation_steps()


def test_encoder_decoder_panels_are_titled_with_their_texts(folders):
    model, tokenizer = load_folder(folders / "bart")
    report = attnlab.inspect("the cat", model=model, tokenizer=tokenizer, target="le")
    assert [p.text for p in AttentionPayload.panels(report)] == [
        "encoder self-attention (source ↔ source): the cat",
        "decoder self-attention (target ↔ target): le",
        "cross-attention (target queries → source keys): le → the cat",
    ]
    assert report._repr_html_().count("<iframe") == 1  # the notebook view: all three panels
