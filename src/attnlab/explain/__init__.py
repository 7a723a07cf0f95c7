"""Learn attention by touching it: one attention computation of a real model, step by step.

``explain(text)`` walks layer ``layer`` of the bundled all-MiniLM-L6-v2 (or an attnlab GPT, or a
BERT-family folder) from the tokens to the layer's output, on the model's own weights, and
``Explanation.save("explain.html")`` writes the interactive page (`attnlab explain`).
"""

from attnlab.explain.build import Explanation, explain
from attnlab.explain.pitfalls import PITFALLS

__all__ = ["PITFALLS", "Explanation", "explain"]
