r"""Cost-accuracy fronts of float, 8-bit and mostly-4-bit MLPs of several widths (AQT, scaled down).

Every arm (``dense``: float32; ``q8``, ``q4``: quantisation-aware training, :mod:`zoo.quant.qat`) is
trained from scratch at every width of the config's ``settings`` (``w<h>``: an MLP with hidden
layers ``[h, h]``), with the same data, initialisation, epochs and optimizer per seed. The cost of
a model is its exported ``payload_bytes`` (integer codes, scales, float biases).

**Fronts** (derived per seed, added to the quantised arms): arm :math:`a`'s front is
:math:`F_a(c) = \max\{\text{acc}(a, h) : \text{cost}(a, h) \le c\}` (the best accuracy it reaches
within cost :math:`c`, :math:`-\infty` below its cheapest model). Against a reference arm
:math:`r`, evaluated at the cost of each of :math:`r`'s models :math:`c_h = \text{cost}(r, h)`:

* ``front_gain_vs_<r>`` = mean over :math:`h` of :math:`F_a(c_h) - F_r(c_h)` (points; > 0 when
  :math:`a`'s front lies above :math:`r`'s at :math:`r`'s own operating points),
* ``front_worst_vs_<r>`` = the minimum of those differences,
* ``dominated_frac_vs_<r>`` = the fraction of :math:`r`'s models for which :math:`a` has a model
  at most as costly and at least as accurate (the paper's "for each bfloat16 model there is a
  cheaper and more accurate quantised model").

Both fronts take a maximum over models, so neither side gets a selection advantage the other lacks.
"""

from __future__ import annotations

import math
from typing import Any

from zoo.experiment import Curve
from zoo.experiments._compressbench import compressbench, job_arms
from zoo.harness import Table
import zoo.quant.qat  # noqa: F401  (registers the "qat" method)

COST = "payload_bytes"


def _points(table: Table, cfg: dict[str, Any], arm: str, i: int) -> list[tuple[float, float]]:
    out = []
    for ja, (a, s) in job_arms(cfg).items():
        if a == arm and ja in table:
            out.append((table.metric(ja, COST)[i], table.metric(ja, "test_acc")[i]))
    return out


def front(points: list[tuple[float, float]], cost: float) -> float:
    """Best accuracy among ``points`` (cost, acc) with cost <= ``cost``; -inf when none."""
    accs = [acc for c, acc in points if c <= cost]
    return max(accs) if accs else -math.inf


def front_stats(mine: list[tuple[float, float]], ref: list[tuple[float, float]]) -> dict[str, float]:
    """``front_gain``, ``front_worst``, ``dominated_frac`` of the front ``mine`` against ``ref`` (see the module docstring)."""
    diffs = [front(mine, c) - front(ref, c) for c, _ in ref]
    dom = [any(c2 <= c and a2 >= a for c2, a2 in mine) for c, a in ref]
    finite = [d if math.isfinite(d) else -100.0 for d in diffs]  # no model within the cost: the worst gap
    return {"front_gain": sum(finite) / len(finite), "front_worst": min(finite), "dominated_frac": sum(dom) / len(dom)}


def _derive(cfg: dict[str, Any], table: Table, out: dict[str, dict[str, list[float]]]) -> None:
    for a, r in cfg.get("front_pairs", []):
        for i in range(len(table.seeds)):
            st = front_stats(_points(table, cfg, a, i), _points(table, cfg, r, i))
            for k, v in st.items():
                out.setdefault(a, {}).setdefault(f"{k}_vs_{r}", []).append(v)


def _curves(cfg: dict[str, Any], table: Table) -> list[Curve]:
    arms = list(dict.fromkeys(a for a, _ in job_arms(cfg).values()))
    n = len(table.seeds)
    pts = {a: sorted((sum(c) / n, sum(acc) / n) for c, acc in
                     ((table.metric(ja, COST), table.metric(ja, "test_acc"))
                      for ja, (aa, _) in job_arms(cfg).items() if aa == a)) for a in arms}
    xs = sorted({c for p in pts.values() for c, _ in p})
    series = {a: [next((acc for c, acc in p if c == x), float("nan")) for x in xs] for a, p in pts.items()}
    return [Curve(title=f"Cost-accuracy fronts: test accuracy vs exported payload (mean of {n} seeds)",
                  x=[x / 1024 for x in xs], series=series, style={a: "o-" for a in arms},
                  xlabel="exported payload (KiB)", ylabel="test accuracy (%)", logx=True)]


EXPERIMENT = compressbench("pareto_optimal_quantized_resnet", extra_derive=_derive, extra_curves=_curves)
