"""docs/tutorial.ipynb runs top to bottom (nbclient, a real ipykernel), in a private working
folder; the repository keeps it without outputs."""

import os
import time
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "docs" / "tutorial.ipynb"


def test_the_tutorial_is_stored_without_outputs():
    import nbformat

    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(c.outputs == [] and c.execution_count is None for c in code)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_the_tutorial_runs_top_to_bottom(tmp_path):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOK, as_version=4)
    client = NotebookClient(nb, timeout=180, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})  # fmt: skip
    start = time.perf_counter()
    # IPython's profile and matplotlib's cache go to the private folder too.
    env = dict(os.environ, IPYTHONDIR=str(tmp_path / ".ipython"),
               MPLCONFIGDIR=str(tmp_path / ".matplotlib"))  # fmt: skip
    client.execute(env=env)  # a failing cell raises CellExecutionError with its traceback
    seconds = time.perf_counter() - start
    print(f"tutorial executed in {seconds:.0f} s")
    outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    assert "row of 'cat' equals the hand computation" in text
    assert "[128 → 4×32]" in text and "66048 parameters with 4 heads, 66048 with 1" in text
    assert "causal: no output at positions" in text
    assert "layer 5 head 11: it→animal 0.65" in text
    pages = [o for o in outputs if "text/html" in o.get("data", {})]
    assert len(pages) == 3  # the GPT walk, the MiniLM report's page, the MiniLM walk
    assert (tmp_path / "runs" / "tutorial" / "checkpoint.safetensors").is_file()
