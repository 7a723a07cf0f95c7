"""attnlab.ablate_heads on Hugging Face models, against an independent edit: a pre-hook on the
output projection that overwrites the head's slice of its input."""

from __future__ import annotations

import pytest
import torch

import attnlab

from .hf_zoo import ZOO


def projection_edit(projection: torch.nn.Module, head: int, d_head: int, mode: str):
    def hook(module, args):  # args[0]: (B, T, H·d) concatenated head outputs
        x = args[0].clone()
        cols = slice(head * d_head, (head + 1) * d_head)
        x[..., cols] = 0.0 if mode == "zero" else x[..., cols].mean(dim=(0, 1), keepdim=True)
        return (x, *args[1:])

    return projection.register_forward_pre_hook(hook)


CASES = [  # (architecture, layer key, output projection path)
    ("llama", 1, "model.layers.1.self_attn.o_proj"),
    ("gpt2", 0, "transformer.h.0.attn.c_proj"),
    ("bert", 1, "encoder.layer.1.attention.output.dense"),
    ("bart", "model.decoder.layers.0.encoder_attn", "model.decoder.layers.0.encoder_attn.out_proj"),
]


@pytest.mark.parametrize("mode", ["zero", "mean"])
@pytest.mark.parametrize(("name", "layer", "projection"), CASES)
def test_ablation_equals_editing_the_output_projection_input(name, layer, projection, mode):
    arch = ZOO[name]
    model = arch.build()
    ids = torch.randint(3, 90, (2, 7), generator=torch.Generator().manual_seed(0))
    inputs = {"input_ids": ids}
    if arch.kind == "seq2seq":
        inputs["decoder_input_ids"] = ids[:, :4]
    first = lambda out: next(iter(out.values()))  # noqa: E731
    with torch.no_grad():
        plain = first(model(**inputs))
        with attnlab.ablate_heads(model, {layer: [2]}, mode=mode):
            ablated = first(model(**inputs))
        handle = projection_edit(model.get_submodule(projection), 2, 16, mode)
        want = first(model(**inputs))
        handle.remove()
    assert not torch.allclose(ablated, plain)
    torch.testing.assert_close(ablated, want, rtol=1e-5, atol=1e-5)
    assert model.config._attn_implementation == "sdpa"


def test_bad_layer_and_head_are_clear_errors():
    model = ZOO["bart"].build()
    with (
        pytest.raises(ValueError, match="name the attention"),
        attnlab.ablate_heads(model, {0: [1]}),
    ):
        pass
    llama = ZOO["llama"].build()
    with pytest.raises(ValueError, match=r"in \[0, 4\)"), attnlab.ablate_heads(llama, {0: [4]}):
        pass
    mlp = {"model.layers.0.mlp": [0]}
    with (
        pytest.raises(ValueError, match="not an attention module"),
        attnlab.ablate_heads(llama, mlp),
    ):
        pass
