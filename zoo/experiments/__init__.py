"""Scaled-down paper experiments, one module per catalogue id, each declaring ``EXPERIMENT``.

An experiment is a :class:`zoo.harness.Experiment`: what one ``(arm, seed)`` job does and what is
computed once and shared; the harness owns the loop over seeds and arms. Each uses
:mod:`zoo.training` for seeding, data, models and the training loop, and the library modules
(``zoo.optim``, ``zoo.pruning``, ...) for the method itself. The runner, ``zoo.reproduce``,
composes ``cfg`` from the spec with Hydra and records the results.
"""
