"""Shared training utilities: every experiment uses these, none writes its own loop.

* :func:`seed_everything` - seeding and deterministic kernels;
* :class:`TensorData`, :func:`load_dataset` - tiny datasets living on the device as tensors,
  batched by indexing (no DataLoader);
* :class:`MLP`, :class:`SmallCNN` - small reference models;
* :func:`train`, :func:`evaluate` - the train/eval loop with hooks and per-epoch metrics.
"""

from zoo.training.data import TensorData, load_dataset
from zoo.training.loop import History, evaluate, train
from zoo.training.models import MLP, SmallCNN
from zoo.training.seed import seed_everything

__all__ = ["TensorData", "load_dataset", "History", "evaluate", "train", "MLP", "SmallCNN", "seed_everything"]
