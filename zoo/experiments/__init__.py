"""Scaled-down paper experiments, one module per catalogue id: ``run(cfg, ctx) -> RunResult``.

Each uses :mod:`zoo.training` for seeding, data, models and the loop, and the library modules
(``zoo.optim``, ``zoo.pruning``, ...) for the method itself. The runner, ``zoo.reproduce``,
composes ``cfg`` from the spec with Hydra and records the results.
"""
