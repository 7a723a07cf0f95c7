"""One vocabulary across the public API (the README's Glossary): every parameter, config field
and output field of the public classes and functions is checked by name.

* padding mask: ``attention_mask`` (B, S), True/1 = real token; an encoder-decoder's target
  padding is ``decoder_attention_mask``, the source padding seen by cross-attention
  ``encoder_attention_mask`` (Hugging Face's names);
* full attention mask: ``mask`` (…, T, S), True = may attend;
* weights on request: ``need_weights``; returned per layer as ``attentions`` (Hugging Face's
  ``encoder_attentions``, ``decoder_attentions``, ``cross_attentions`` for encoder-decoders);
* shared input/output embedding: ``tie_weights``.
"""

import dataclasses
import importlib
import inspect

import attnlab

# Old names that must not come back, with the glossary name that replaced each.
RETIRED = {
    "key_padding_mask": "attention_mask",
    "src_padding_mask": "attention_mask",
    "memory_padding_mask": "encoder_attention_mask",
    "tgt_padding_mask": "decoder_attention_mask",
    "src_mask": "attention_mask",
    "tgt_mask": "mask",
    "key_is_real": "attention_mask",
    "output_attentions": "need_weights",
    "return_weights": "need_weights",
    "tie_output": "tie_weights",
    "tie_word_embeddings": "tie_weights",
}
RETIRED_METHODS = {"forward_with_weights": "forward(..., need_weights=True)"}
# Every parameter named *_mask must be one of these.
MASK_NAMES = {"mask", "attention_mask", "decoder_attention_mask", "encoder_attention_mask"}

MODULES = [
    "attnlab",
    "attnlab.masks",
    "attnlab.hooks",
    "attnlab.nn.attention",
    "attnlab.nn.blocks",
    "attnlab.nn.feed_forward",
    "attnlab.nn.kv_cache",
    "attnlab.models.config",
    "attnlab.models.gpt",
    "attnlab.models.encoder",
    "attnlab.models.encoder_decoder",
    "attnlab.models.checkpoint",
]

# Known offenders in code another change owns, renamed at merge: (qualified name, parameter).
# An entry that no longer offends fails the test too, so the list shrinks.
PENDING: set[tuple[str, str]] = set()  # (qualified name, parameter) still to be renamed


def public_objects():
    """(qualified name, object) for every public function, class and method."""
    seen = set()
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        for name in getattr(module, "__all__", []):
            obj = getattr(module, name)
            if not callable(obj) or inspect.ismodule(obj) or id(obj) in seen:
                continue
            seen.add(id(obj))
            qualified = f"{module_name}.{name}"
            yield qualified, obj
            if inspect.isclass(obj):
                for attr, member in vars(obj).items():
                    if attr.startswith("_") and attr != "__init__":
                        continue
                    member = getattr(member, "__func__", member)  # classmethod / staticmethod
                    if inspect.isfunction(member):
                        yield f"{qualified}.{attr}", member


def names_of(obj):
    """Parameter names of a callable, field names of a NamedTuple or dataclass."""
    names = []
    if inspect.isclass(obj):
        if hasattr(obj, "_fields"):
            names += list(obj._fields)
        if dataclasses.is_dataclass(obj):
            names += [f.name for f in dataclasses.fields(obj)]
        return names
    return list(inspect.signature(obj).parameters)


def offences():
    found = set()
    for qualified, obj in public_objects():
        method = qualified.rsplit(".", 1)[-1]
        if method in RETIRED_METHODS:
            found.add((qualified, f"method (use {RETIRED_METHODS[method]})"))
        for name in names_of(obj):
            if name in RETIRED or (name.endswith("_mask") and name not in MASK_NAMES):
                found.add((qualified, name))
    return found


def test_the_walk_covers_the_models_layers_and_hooks():
    walked = {q for q, _ in public_objects()}
    for expected in (
        "attnlab.GPT.forward", "attnlab.EncoderDecoder.forward", "attnlab.EncoderDecoder.decode",
        "attnlab.Encoder.forward", "attnlab.MultiHeadAttention.forward",
        "attnlab.nn.blocks.DecoderLayer.forward", "attnlab.nn.blocks.DecoderOnlyLayer.forward",
        "attnlab.masks.from_key_padding", "attnlab.run_with_cache", "attnlab.ablate_heads",
        "attnlab.EncoderDecoderConfig", "attnlab.ModelOutput",
    ):  # fmt: skip
        assert expected in walked, expected


def test_public_names_follow_the_glossary():
    found = offences()
    new = sorted(found - PENDING)
    assert not new, (
        "parameters named outside the glossary (see this file's docstring): "
        + ", ".join(f"{q}({n}) → {RETIRED.get(n, 'a glossary name')}" for q, n in new)
    )
    fixed = sorted(PENDING - found)
    assert not fixed, f"no longer offending, remove from PENDING: {fixed}"


def test_the_padding_mask_is_called_attention_mask_everywhere_it_is_taken():
    takes = {
        "attnlab.MultiHeadAttention.forward",
        "attnlab.Encoder.forward",
        "attnlab.EncoderDecoder.forward",
        "attnlab.EncoderDecoder.encode",
        "attnlab.EncoderDecoder.decode",
        "attnlab.EncoderDecoder.generate",
        "attnlab.nn.blocks.EncoderLayer.forward",
        "attnlab.nn.blocks.DecoderOnlyLayer.forward",
        "attnlab.nn.blocks.DecoderLayer.forward",
    }
    objects = dict(public_objects())
    for name in takes:
        assert "attention_mask" in names_of(objects[name]), name
    assert "encoder_attention_mask" in names_of(objects["attnlab.nn.blocks.DecoderLayer.forward"])


def test_models_and_layers_take_need_weights():
    objects = dict(public_objects())
    for name in (
        "attnlab.GPT.forward", "attnlab.Encoder.forward", "attnlab.EncoderDecoder.forward",
        "attnlab.MultiHeadAttention.forward", "attnlab.nn.blocks.EncoderLayer.forward",
        "attnlab.nn.blocks.DecoderOnlyLayer.forward", "attnlab.nn.blocks.DecoderLayer.forward",
    ):  # fmt: skip
        assert "need_weights" in names_of(objects[name]), name
    fields = attnlab.ModelOutput._fields
    for field in ("attentions", "encoder_attentions", "decoder_attentions", "cross_attentions"):
        assert field in fields
    assert "tie_weights" in names_of(attnlab.GPTConfig)
    assert "tie_weights" in names_of(attnlab.EncoderDecoderConfig)


def test_the_output_path_is_the_last_positional_argument_everywhere():
    import inspect as pyinspect

    from attnlab.viz import figures, html

    checked = []
    for module in (figures, html):
        for name, fn in vars(module).items():
            if name.startswith("_") or not pyinspect.isfunction(fn):
                continue
            if fn.__module__ != module.__name__:
                continue
            params = pyinspect.signature(fn).parameters.values()
            positional = [p.name for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
            if "path" in positional:
                checked.append(name)
                assert positional[-1] == "path", f"{module.__name__}.{name}{positional}"
    assert {"heatmap", "write_page", "token_links"} <= set(checked)


def test_model_and_tokenizer_are_keywords_wherever_a_text_is_run():
    import inspect as pyinspect

    import attnlab
    from attnlab.viz import render

    for fn in (attnlab.inspect, render.show):
        params = pyinspect.signature(fn).parameters
        for name in ("model", "tokenizer"):
            if name in params:
                assert params[name].kind is pyinspect.Parameter.KEYWORD_ONLY, (fn, name)
