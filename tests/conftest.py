import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture
def spy(monkeypatch):
    """``spy(fn)`` → a list that records the arguments of every call to ``fn``, wherever attnlab
    imported it (the defining module and every ``from … import fn``), so a test can tell which
    kernel ran without reading notes or private names. ``fn`` still runs."""
    import sys

    def install(fn):
        calls = []

        def wrapper(*args, **kwargs):
            calls.append((args, kwargs))
            return fn(*args, **kwargs)

        patched = 0
        for name, module in list(sys.modules.items()):
            if name == "attnlab" or name.startswith("attnlab."):
                for attr, value in list(vars(module).items()):
                    if value is fn:
                        monkeypatch.setattr(module, attr, wrapper)
                        patched += 1
        assert patched, f"{fn.__qualname__} is not referenced by any attnlab module"
        return calls

    return install
