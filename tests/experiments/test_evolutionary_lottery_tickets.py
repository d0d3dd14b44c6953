"""evolutionary_lottery_tickets wiring: arms share the dense ES run; the criterion changes the ticket."""

from tests.experiments.budgets import quick_run_metrics


def test_quick_run_metrics(tmp_path):
    m = quick_run_metrics("evolutionary_lottery_tickets", tmp_path)
    # same init, same ES noise: the dense round is identical for every criterion
    assert m["magnitude"]["dense_acc"] == m["snr"]["dense_acc"] == m["random"]["dense_acc"]
    assert m["snr"]["final_sparsity"][0] > 85
    assert len({m[a]["final_acc"][0] for a in ("magnitude", "snr", "random")}) > 1
