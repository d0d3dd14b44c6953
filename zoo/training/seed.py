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
    if deterministic and torch.cuda.is_available():
        # CPU kernels are already deterministic for a fixed thread count; on CUDA, cuBLAS needs this
        # workspace setting and some kernels need the deterministic flag. (The flag is not set on
        # CPU-only machines because it imports torch._inductor, seconds of start-up for nothing.)
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
    return generator(seed)


def generator(seed: int) -> torch.Generator:
    g = torch.Generator()
    g.manual_seed(seed)
    return g
