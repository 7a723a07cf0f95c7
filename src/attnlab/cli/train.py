"""`attnlab train`: train a GPT on text or a translator on verse pairs, resumably."""

from __future__ import annotations

import argparse
import dataclasses

from attnlab.train.config import CHOICES, PRESETS, TrainConfig, load_config
from attnlab.train.distributed import STOP_SIGNALS, launch

# After a stop on a signal, 128 + its number, as shells expect (the run saved first).
EXIT_STATUS = {reason: 128 + signum for signum, reason in STOP_SIGNALS.items()}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train",
        help="train a GPT (language model) or an encoder-decoder (translation)",
        description=(
            "Train with AdamW, warm-up + cosine learning rate, gradient clipping and accumulation, "
            "periodic validation, a progress bar and a JSON-lines log (OUT_DIR/metrics.jsonl). "
            "Checkpoints (OUT_DIR/checkpoint.safetensors) are written atomically at every "
            "evaluation and on Ctrl-C or SIGTERM (then the exit status is 130 or 143); --resume "
            "continues exactly where the last one stopped; a folder that holds a run needs "
            "--resume or --overwrite. "
            f"Presets: {', '.join(PRESETS)}. Options: defaults < --preset < --config TOML < flags."
        ),
    )
    p.add_argument("--preset", choices=sorted(PRESETS), help="named configuration")
    p.add_argument("--config", help="TOML file with TrainConfig fields")
    p.add_argument("--resume", action="store_true", help="continue from OUT_DIR's checkpoint")
    p.add_argument("--overwrite", action="store_true",
                   help="replace the run in OUT_DIR (its checkpoint and log); without it or "
                   "--resume, a folder holding a run is refused")  # fmt: skip
    p.add_argument("--nproc", type=int, default=1, help="data-parallel processes (gloo, CPU)")
    for field in dataclasses.fields(TrainConfig):
        flag = "--" + field.name.replace("_", "-")
        kind = type(field.default)
        choices = f"one of {', '.join(CHOICES[field.name])} " if field.name in CHOICES else ""
        about = _HELP.get(field.name, "")
        p.add_argument(flag, type=kind, default=None, dest=field.name,
                       help=f"{about}{choices}(default {field.default!r})")  # fmt: skip
    p.set_defaults(func=run)


_HELP = {
    "dtype": "bfloat16 runs the forward under autocast; weights, gradients and optimizer stay "
    "float32; ",
    "activation": "the feed-forward's: gelu is the exact (erf) one, gelu_tanh GPT-2's; ",
}


def run(args: argparse.Namespace) -> int:
    overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig)}
    config = load_config(args.preset, args.config, **overrides)
    print(f"training {config.task} on {config.corpus}; output in {config.out_dir}", flush=True)
    result = launch(config, resume=args.resume, overwrite=args.overwrite, nproc=args.nproc)
    shown = "n/a" if result.val_loss is None else f"{result.val_loss:.4f}"
    print(f"{result.stopped} at step {result.steps}; validation loss {shown}; checkpoint "
          f"{config.out_dir}/checkpoint.safetensors")  # fmt: skip
    return EXIT_STATUS.get(result.stopped, 0)
