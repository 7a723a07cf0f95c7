"""The registry of experiments: name → (config class, run function)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from attnlab.experiments import coreference, faithfulness, heads, long_range, masking, scaling

__all__ = ["EXPERIMENTS", "run_experiment"]

# name → (module with a Config dataclass having .quick(), and run(config, out_dir) → dict)
EXPERIMENTS: dict[str, tuple[type, Callable[..., dict], str]] = {
    "scaling": (scaling.ScalingConfig, scaling.run, "why divide by √d_k"),
    "masking": (masking.MaskingConfig, masking.run, "why mask: a GPT without the causal mask"),
    "long-range": (
        long_range.LongRangeConfig,
        long_range.run,
        "attention vs LSTM/GRU at distance d",
    ),
    "heads": (heads.HeadsConfig, heads.run, "multi-head vs one head at equal parameters"),
    "coreference": (
        coreference.CoreferenceConfig,
        coreference.run,
        'does "it" attend to its antecedent?',
    ),
    "faithfulness": (
        faithfulness.FaithfulnessConfig,
        faithfulness.run,
        "which measure finds the token the model used?",
    ),
}


def run_experiment(name: str, out_dir: str | Path, *, quick: bool = False) -> dict:
    if name not in EXPERIMENTS:
        raise ValueError(f"unknown experiment {name!r}; available: {sorted(EXPERIMENTS)}")
    config_cls, run, _ = EXPERIMENTS[name]
    config = config_cls.quick() if quick else config_cls()
    return run(config, Path(out_dir))
