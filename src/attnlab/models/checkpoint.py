"""Checkpoints: one safetensors file per model, the same format for a saved model and a training
run.

A checkpoint file holds
    tensors   the model's state dict, each tensor stored once: a weight reachable under two
              names (GPT's ``lm_head.weight`` is ``token_embedding.weight``) is stored under the
              first and re-tied by the model's constructor; :func:`tied_weights` finds the
              aliases on the model itself
              + anything the writer adds under its own prefix (a training run: ``optimizer/``)
    metadata  {"format": "attnlab/2", "architecture": "GPT" | "Encoder" | "EncoderDecoder",
               "config": the model config as JSON} + the writer's own keys (a training run:
               "training", see :mod:`attnlab.train.checkpoint`)

:func:`save_model` writes a folder: ``model.safetensors`` and optionally ``tokenizer.json`` (a
Hugging Face ``tokenizers`` file, to turn text into ids). Folders written before this format
(``config.json`` + ``model.safetensors`` without metadata) still load.

Files are written atomically (temporary file, then rename). Loading never unpickles anything and
refuses weights that do not match the configuration, naming the first mismatch.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import safetensors.torch
from safetensors import safe_open
from torch import Tensor, nn

from attnlab.atomic import atomic_write, write_text
from attnlab.models.config import EncoderConfig, EncoderDecoderConfig, GPTConfig
from attnlab.models.encoder import Encoder
from attnlab.models.encoder_decoder import EncoderDecoder
from attnlab.models.gpt import GPT

__all__ = [
    "FORMAT",
    "Checkpoint",
    "load_model",
    "read_checkpoint",
    "restore_model",
    "save_model",
    "tied_weights",
    "write_checkpoint",
]

FORMAT = "attnlab/2"
_ARCHITECTURES = {
    "GPT": (GPT, GPTConfig),
    "Encoder": (Encoder, EncoderConfig),
    "EncoderDecoder": (EncoderDecoder, EncoderDecoderConfig),
}


def tied_weights(model: nn.Module) -> dict[str, str]:
    """Every alias of a shared parameter or buffer → the first name it has in the state dict."""
    first: dict[int, str] = {}
    aliases = {}
    named = [*model.named_parameters(remove_duplicate=False),
             *model.named_buffers(remove_duplicate=False)]  # fmt: skip
    for name, tensor in named:
        if id(tensor) in first:
            aliases[name] = first[id(tensor)]
        else:
            first[id(tensor)] = name
    return aliases


def model_tensors(model: nn.Module) -> dict[str, Tensor]:
    """The state dict without the aliases of :func:`tied_weights`, every tensor contiguous."""
    aliases = tied_weights(model)
    return {k: v.detach().contiguous() for k, v in model.state_dict().items() if k not in aliases}


def write_checkpoint(
    path: str | Path, model: nn.Module, *, extra_tensors: dict[str, Tensor] | None = None,
    extra_metadata: dict[str, str] | None = None,
) -> Path:  # fmt: skip
    """Write ``model`` (GPT, Encoder or EncoderDecoder) and the caller's extras to one file."""
    name = type(model).__name__
    if name not in _ARCHITECTURES:
        raise ValueError(f"checkpoints support {sorted(_ARCHITECTURES)}; got {name}")
    tensors = model_tensors(model)
    clash = sorted(set(tensors) & set(extra_tensors or {}))
    if clash:
        raise ValueError(f"extra tensors must not reuse the model's names; got {clash[:5]}")
    tensors.update(extra_tensors or {})
    meta = {"format": FORMAT, "architecture": name, "config": json.dumps(model.config.to_dict()),
            "attnlab_version": _version(), **(extra_metadata or {})}  # fmt: skip
    # looked up at call time, so a test can stand in a failing writer (a full disk)
    return atomic_write(path, lambda tmp: safetensors.torch.save_file(tensors, tmp, metadata=meta))


@dataclass
class Checkpoint:
    metadata: dict[str, str]
    tensors: dict[str, Tensor]  # everything in the file, model and extras

    def build_model(self, path: str | Path = "checkpoint") -> nn.Module:
        """The model of the architecture and config recorded in the file, not yet loaded."""
        found = self.metadata.get("architecture")
        if found not in _ARCHITECTURES:
            raise ValueError(f"{path}: metadata 'architecture' must be one of "
                             f"{sorted(_ARCHITECTURES)}; got {found!r}")  # fmt: skip
        model_cls, config_cls = _ARCHITECTURES[found]
        data = self.json_entry("config", path)
        try:
            config = config_cls.from_dict(data)
        except (ValueError, TypeError) as err:
            raise ValueError(f"{path}: {err}{written_by(self.metadata)}") from None
        return model_cls(config)

    def json_entry(self, key: str, path: str | Path) -> dict:
        """The metadata entry ``key``, a JSON object, or a ValueError naming the entry."""
        if key not in self.metadata:
            raise ValueError(f"{path} lacks the metadata entry {key!r}{written_by(self.metadata)}")
        try:
            value = json.loads(self.metadata[key])
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}: metadata entry {key!r} is not JSON ({err})") from None
        if not isinstance(value, dict):
            raise ValueError(f"{path}: metadata entry {key!r} must be a JSON object; got "
                             f"{type(value).__name__}")  # fmt: skip
        return value

    def model_state(self) -> dict[str, Tensor]:
        return {k: v for k, v in self.tensors.items() if "/" not in k}  # extras are prefixed


def _version() -> str:
    import attnlab  # at call time: attnlab imports this module while it initialises

    return attnlab.__version__


def written_by(metadata: dict[str, str]) -> str:
    """The note "(written by attnlab X; this is attnlab Y)" for errors about a file's content."""
    found = metadata.get("attnlab_version", "before 0.1.0 (no version recorded)")
    return f" (written by attnlab {found}; this is attnlab {_version()})"


def read_checkpoint(path: str | Path, *, tensors: bool = True) -> Checkpoint:
    """Every tensor (none if not ``tensors``: the header alone is read) and the metadata of a
    safetensors file (no format check)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            loaded = {k: f.get_tensor(k) for k in (f.keys() if tensors else ())}
    except Exception as err:  # truncated/corrupted files raise safetensors' own errors
        raise ValueError(
            f"{path} is not a readable checkpoint (truncated or corrupted?): {err}"
        ) from None
    return Checkpoint(meta, loaded)


def restore_model(model: nn.Module, state: dict[str, Tensor], source: str | Path = "checkpoint"
                  ) -> None:  # fmt: skip
    """Load ``state`` into ``model``: every tensor must fit, and only the model's own aliases
    (:func:`tied_weights`) may be absent."""
    expected = model.state_dict()
    for key, tensor in state.items():
        if key not in expected:
            raise ValueError(f"{source} has a tensor {key!r} that {type(model).__name__} with "
                             "this config does not")  # fmt: skip
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise ValueError(
                f"{source}: {key} has shape {tuple(tensor.shape)}, the config expects "
                f"{tuple(expected[key].shape)}"
            )
    missing = set(model.load_state_dict(state, strict=False).missing_keys)
    missing -= set(tied_weights(model))
    if missing:
        raise ValueError(f"{source} lacks tensors: {sorted(missing)[:5]}")


def save_model(model: nn.Module, folder: str | Path, *, tokenizer_json: str | None = None) -> Path:
    """Write ``model`` to ``folder``/model.safetensors (and the tokenizer, if given)."""
    folder = Path(folder)
    write_checkpoint(folder / "model.safetensors", model)
    if tokenizer_json is not None:
        write_text(folder / "tokenizer.json", tokenizer_json)
    return folder


def load_model(path: str | Path) -> nn.Module:
    """The model in a checkpoint, in eval mode: a folder written by :func:`save_model` (or by
    the previous format), or a checkpoint file (a training run's ``checkpoint.safetensors``)."""
    path = Path(path)
    weights = path / "model.safetensors" if path.is_dir() else path
    if path.is_dir() and (path / "config.json").is_file():
        return _load_previous_format(path)
    if not weights.is_file():
        raise FileNotFoundError(f"not an attnlab checkpoint: {weights} is missing")
    checkpoint = read_checkpoint(weights)
    found = checkpoint.metadata.get("format")
    if found != FORMAT:
        raise ValueError(f"{weights} is not an attnlab model checkpoint (format {found!r}, "
                         f"expected {FORMAT!r})")  # fmt: skip
    model = checkpoint.build_model(weights)
    restore_model(model, checkpoint.model_state(), weights)
    return model.eval()


def _load_previous_format(folder: Path) -> nn.Module:
    """attnlab/1 folders: ``config.json`` {"architecture", "config"} + ``model.safetensors``
    holding only the state dict."""
    config_path, weights = folder / "config.json", folder / "model.safetensors"
    if not weights.is_file():
        raise FileNotFoundError(f"not an attnlab checkpoint: {weights} is missing")
    try:
        meta = json.loads(config_path.read_text())
        metadata = {"architecture": meta["architecture"], "config": json.dumps(meta["config"])}
    except (KeyError, json.JSONDecodeError, TypeError) as err:
        raise ValueError(f"{config_path} is not a valid attnlab config: {err!r}") from None
    try:
        state = safetensors.torch.load_file(str(weights))
    except Exception as err:  # safetensors raises its own types for corrupt files
        raise ValueError(f"{weights} is not a readable safetensors file: {err}") from None
    model = Checkpoint(metadata, state).build_model(config_path)
    restore_model(model, state, weights)
    return model.eval()
