"""What an experiment's plot is made of. No torch here.

Experiments declare a :class:`zoo.harness.Experiment` (one ``(arm, seed)`` job plus what is
shared); the harness runs the jobs and the runner owns everything else: config composition,
results on disk, verdicts, provenance and the plot, whose panels are the :class:`Curve` objects
an experiment's ``curves`` function returns.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Curve"]


@dataclass
class Curve:
    """One panel of the run's plot: named series over a shared x axis.

    ``series`` maps a label to y values (one per x); ``bands`` optionally maps the same label to
    a (low, high) pair of lists drawn as a shaded spread, e.g. min/max over seeds.
    """

    title: str
    x: list[float]
    series: dict[str, list[float]]
    xlabel: str = ""
    ylabel: str = ""
    logx: bool = False
    logy: bool = False
    bands: dict[str, tuple[list[float], list[float]]] = field(default_factory=dict)
    style: dict[str, str] = field(default_factory=dict)  # label -> matplotlib format string
