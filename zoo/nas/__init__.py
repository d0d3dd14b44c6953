"""Training-free neural architecture search: zero-cost proxies and searches that combine them.

* :mod:`zoo.nas.space` - a toy search space of ReLU MLPs (sampling, building, training them);
* :mod:`zoo.nas.swap` - SWAP-Score (Peng et al., 2024): distinct sample-wise activation patterns;
* :mod:`zoo.nas.nwot` - NWOT (Mellor et al., 2021): log-determinant of the Hamming kernel of
  activation codes;
* :mod:`zoo.nas.robot` - RoBoT (He et al., ICLR 2024): a Bayesian-optimised weighted combination
  of training-free metrics followed by greedy exploitation, and the gradient-based metrics it
  combines (grad_norm, snip, synflow).
"""

from zoo.nas.nwot import nwot_score
from zoo.nas.swap import activation_signs, swap_score

__all__ = ["swap_score", "activation_signs", "nwot_score"]
