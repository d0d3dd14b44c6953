"""Wiring of fisher_sparse_masks: pretrain on 0-4, fine-tune/test on 5-9; masks bound the update."""

from __future__ import annotations

import torch

from tests.experiments.budgets import quick_run_metrics
from zoo.experiments.fisher_sparse_masks import class_task
from zoo.workloads.classification import Task


def test_quick_run(tmp_path):
    m = quick_run_metrics("fisher_sparse_masks", tmp_path, workers=1)
    assert m["fish"]["updated_params"][0] <= m["fish"]["trainable_params"][0] == 506
    assert m["random"]["trainable_params"][0] == 506
    assert m["bias"]["trainable_params"][0] == 410
    assert m["full"]["updated_params"][0] > 10 * m["fish"]["updated_params"][0]
    assert m["full"]["gap_to_full"][0] == 0


def test_class_task_keeps_only_the_classes():
    y = torch.arange(10).repeat(3)
    x = torch.randn(30, 4)
    t = Task(x, y, y, torch.zeros(30, dtype=torch.bool), x, y, y, x, y, 10)
    s = class_task(t, [5, 6, 7, 8, 9])
    assert set(s.y_train.tolist()) == set(s.y_test.tolist()) == {5, 6, 7, 8, 9} and s.n_train == 15
