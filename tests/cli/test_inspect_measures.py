"""`attnlab inspect --measure`: the ranking printed equals one computed independently."""

from __future__ import annotations

import numpy as np
import torch

from attnlab.cli.main import main
from attnlab.inspection.pretrained import load_minilm

TEXT = "The animal didn't cross the street because it was tired"


def test_rollout_ranking_equals_the_formula_on_eager_weights(capsys) -> None:
    assert main(["inspect", TEXT, "--token", "it", "--measure", "rollout", "--top", "3"]) == 0
    printed = capsys.readouterr().out.splitlines()[-1]
    model, tokenizer = load_minilm("eager")
    enc = tokenizer(TEXT, return_tensors="pt")
    with torch.no_grad():
        attentions = model(**enc, output_attentions=True).attentions
    T = enc["input_ids"].shape[1]
    R = np.eye(T)
    for A in attentions:  # Â = ½·mean_h A + ½·I, R = Â_L ⋯ Â_1
        R = (0.5 * np.eye(T) + 0.5 * A[0].double().mean(0).numpy()) @ R
    tokens = tokenizer.convert_ids_to_tokens(enc["input_ids"][0])
    row = R[tokens.index("it")]
    best = np.argsort(-row)[:3]
    want = ", ".join(f"{tokens[j]} {row[j]:.3f}" for j in best)
    assert printed.endswith(want), (printed, want)


def test_head_effects_prints_a_layers_by_heads_table(capsys) -> None:
    assert main(["inspect", TEXT, "--token", "it", "--measure", "head-effects"]) == 0
    rows = capsys.readouterr().out.splitlines()[-6:]
    assert [len(r.split()) for r in rows] == [12] * 6
