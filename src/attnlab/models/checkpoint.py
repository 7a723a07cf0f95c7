"""Saving and loading attnlab models: safetensors for weights, JSON for the configuration.

A checkpoint is a folder:
    config.json        {"architecture": "GPT" | "Encoder" | "EncoderDecoder", "config": {...}}
    model.safetensors  the state dict (shared tensors stored once)
    tokenizer.json     optional: a Hugging Face ``tokenizers`` file, to turn text into ids

Files are written atomically (temporary file, then rename). Loading never unpickles anything and
refuses weights that do not match the configuration, naming the first mismatch.
"""

from __future__ import annotations

import json
from pathlib import Path

from safetensors.torch import load_file, save_file
from torch import nn

from attnlab.atomic import atomic_write, write_json, write_text
from attnlab.models.config import EncoderConfig, EncoderDecoderConfig, GPTConfig
from attnlab.models.encoder import Encoder
from attnlab.models.encoder_decoder import EncoderDecoder
from attnlab.models.gpt import GPT

__all__ = ["load_model", "save_model"]

_ARCHITECTURES = {
    "GPT": (GPT, GPTConfig),
    "Encoder": (Encoder, EncoderConfig),
    "EncoderDecoder": (EncoderDecoder, EncoderDecoderConfig),
}


def save_model(model: nn.Module, folder: str | Path, *, tokenizer_json: str | None = None) -> Path:
    """Write ``model`` (GPT, Encoder or EncoderDecoder) to ``folder``."""
    name = type(model).__name__
    if name not in _ARCHITECTURES:
        raise ValueError(f"save_model supports {sorted(_ARCHITECTURES)}; got {name}")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {}
    seen: dict[int, str] = {}
    for key, tensor in model.state_dict().items():
        if tensor.data_ptr() in seen:  # tied weights: stored once, re-tied by the constructor
            continue
        seen[tensor.data_ptr()] = key
        state[key] = tensor.detach().contiguous()
    atomic_write(folder / "model.safetensors", lambda tmp: save_file(state, tmp))
    config = {"architecture": name, "config": model.config.to_dict()}
    write_json(folder / "config.json", config)
    if tokenizer_json is not None:
        write_text(folder / "tokenizer.json", tokenizer_json)
    return folder


def load_model(folder: str | Path) -> nn.Module:
    """Read a model written by :func:`save_model`, in eval mode."""
    folder = Path(folder)
    config_path, weights_path = folder / "config.json", folder / "model.safetensors"
    for path in (config_path, weights_path):
        if not path.is_file():
            raise FileNotFoundError(f"not an attnlab checkpoint: {path} is missing")
    try:
        meta = json.loads(config_path.read_text())
        model_cls, config_cls = _ARCHITECTURES[meta["architecture"]]
        config = config_cls.from_dict(meta["config"])
    except (KeyError, json.JSONDecodeError, TypeError) as err:
        raise ValueError(f"{config_path} is not a valid attnlab config: {err!r}") from None
    try:
        state = load_file(str(weights_path))
    except Exception as err:  # safetensors raises its own types for corrupt files
        raise ValueError(f"{weights_path} is not a readable safetensors file: {err}") from None
    model = model_cls(config)
    expected = model.state_dict()
    for key, tensor in state.items():
        if key not in expected:
            raise ValueError(f"{weights_path} has a tensor {key!r} that {meta['architecture']} "
                             "with this config does not")  # fmt: skip
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise ValueError(
                f"{weights_path}: {key} has shape {tuple(tensor.shape)}, the config expects "
                f"{tuple(expected[key].shape)}"
            )
    missing = model.load_state_dict(state, strict=False).missing_keys
    tied = {"lm_head.weight", "output.weight"}
    if set(missing) - tied:
        raise ValueError(f"{weights_path} lacks tensors: {sorted(set(missing) - tied)[:5]}")
    return model.eval()
