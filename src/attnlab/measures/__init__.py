"""Measures beyond raw attention weights, from exact maps and the model.

* :func:`rollout` — attention rollout (Abnar & Zuidema, 2020), full or one target streamed;
* :func:`grad_attention` — gradient × attention for a chosen output;
* :func:`head_effects` — change of a chosen output when each head is ablated (batched);
* :func:`value_norms` — ‖α_ij · f(x_j)‖ per head (Kobayashi et al., 2020), streamed.

Each works on attnlab models and on every Hugging Face model :func:`attnlab.capture` supports;
:class:`attnlab.inspection.report.Report` has the same measures as methods for one text.
"""

from attnlab.measures.ablation import head_effects
from attnlab.measures.gradients import grad_attention
from attnlab.measures.rollout import rollout
from attnlab.measures.value_norms import value_norms

__all__ = ["grad_attention", "head_effects", "rollout", "value_norms"]
