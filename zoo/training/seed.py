"""Seeding and determinism."""

from __future__ import annotations

import os
import random

import numpy as np
import torch

__all__ = ["seed_everything", "generator"]


def seed_everything(seed: int, deterministic: bool = True) -> torch.Generator:
    """Seed Python, NumPy and torch (all devices); optionally force deterministic kernels.

    Returns a CPU ``torch.Generator`` seeded with ``seed`` for data order, so that the batch
    order does not depend on how many random numbers model initialisation consumed.
    """
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if deterministic:
        # cuBLAS needs this workspace setting for deterministic matmuls on CUDA.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    return generator(seed)


def generator(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g
