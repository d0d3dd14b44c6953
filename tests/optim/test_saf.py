"""SAF's trajectory loss and output memory: by hand, against the authors' training step, and its promises.

The authors ship no package: ``_authors_step`` below transcribes the SAF lines of
``train_one_epoch`` in https://github.com/AngusDujw/SAF (``SAF_train.py``): a NumPy bank
``train_logits[N, minus_epoch + 1, C]``, written at slot ``epoch % (minus_epoch + 1)`` before the
reference is read from slot ``(epoch - minus_epoch) % (minus_epoch + 1)``, and
``F.kl_div(F.softmax(out / T).log(), F.softmax(ref / T), reduction="none").sum(-1).mean() * T**2``
added with weight ``reinforce`` for ``kl_start_epoch < epoch < kl_end_epoch``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zoo.optim.saf import OutputMemory, SAFLoss, trajectory_loss

TOL = 1e-6  # float32 logits, the authors' float32 bank


def _authors_step(bank, out, target, indices, epoch, *, reinforce, temperature, kl_start_epoch, minus_epoch,
                  kl_end_epoch=300):
    bank[indices, epoch % (minus_epoch + 1)] = out.detach().cpu().numpy()
    loss = F.cross_entropy(out, target)
    if epoch > kl_start_epoch and epoch < kl_end_epoch:
        ref = torch.tensor(bank[indices, (epoch - minus_epoch) % (minus_epoch + 1)])
        kl = F.kl_div(F.softmax(out / temperature, dim=-1).log(), F.softmax(ref / temperature, dim=-1),
                      reduction="none").sum(-1).mean() * temperature**2
        loss = loss + kl * reinforce
    return loss


def test_trajectory_loss_by_hand():
    logits = torch.tensor([[1.0, 2.0, 0.0], [0.5, -1.0, 2.0]])
    past = torch.tensor([[0.0, 0.0, 3.0], [1.0, 1.0, 1.0]])
    tau = 2.0
    total = 0.0
    for a, b in zip(logits.tolist(), past.tolist()):
        q = [math.exp(v / tau) for v in a]
        p = [math.exp(v / tau) for v in b]
        q = [v / sum(q) for v in q]
        p = [v / sum(p) for v in p]
        total += sum(pi * (math.log(pi) - math.log(qi)) for pi, qi in zip(p, q))  # KL(p_past || q_now)
    expected = tau**2 * total / 2
    assert float(trajectory_loss(logits, past, tau)) == pytest.approx(expected, rel=1e-6)


def test_trajectory_gradient_is_tau_times_q_minus_p_and_nothing_flows_to_the_past():
    # d/dz [tau^2 KL(p || softmax(z / tau))] = tau (softmax(z / tau) - p), per example, / B for the mean
    torch.manual_seed(0)
    z = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    past = torch.randn(4, 5, dtype=torch.float64, requires_grad=True)
    tau = 3.0
    trajectory_loss(z, past, tau).backward()
    expected = tau * (F.softmax(z / tau, -1) - F.softmax(past / tau, -1)) / 4
    assert torch.allclose(z.grad, expected, atol=1e-12)
    assert past.grad is None


def test_trajectory_loss_is_zero_on_the_same_outputs_and_positive_otherwise():
    z = torch.randn(8, 10)
    assert float(trajectory_loss(z, z.clone())) == pytest.approx(0.0, abs=1e-6)
    assert float(trajectory_loss(z, z + torch.randn(8, 10))) > 0
    with pytest.raises(ValueError, match="temperature"):
        trajectory_loss(z, z, 0.0)


def test_memory_reads_the_outputs_of_lag_epochs_ago_and_recycles_its_slots():
    mem = OutputMemory(n_examples=6, n_outputs=2, lag=2)
    idx = torch.arange(6)
    for e in range(6):
        mem.write(e, idx, torch.full((6, 2), float(e)))
        if e >= 2:
            assert torch.equal(mem.read(e, idx[:3]), torch.full((3, 2), float(e - 2)))
    assert mem.bank.shape == (3, 6, 2)  # lag + 1 slots
    assert torch.equal(mem.read(7, idx), torch.full((6, 2), 5.0))  # epoch 5 stays until epoch 8 reuses its slot
    with pytest.raises(KeyError):
        mem.read(8, idx)  # epoch 6 was never written
    with pytest.raises(KeyError):
        mem.read(1, idx)  # epoch -1
    with pytest.raises(ValueError, match="lag"):
        OutputMemory(3, 2, lag=0)


def test_memory_refuses_a_partly_written_reference_epoch():
    mem = OutputMemory(n_examples=4, n_outputs=2, lag=1)
    mem.write(0, torch.tensor([0, 1]), torch.ones(2, 2))
    assert torch.equal(mem.read(1, torch.tensor([1, 0])), torch.ones(2, 2))
    with pytest.raises(KeyError):
        mem.read(1, torch.tensor([2]))
    mem.write(1, torch.arange(4), torch.zeros(4, 2))
    mem.write(2, torch.tensor([0]), 2 * torch.ones(1, 2))  # epoch 2 recycles epoch 0's slot, one row so far
    assert torch.equal(mem.read(3, torch.tensor([0])), 2 * torch.ones(1, 2))
    with pytest.raises(KeyError):
        mem.read(3, torch.tensor([1]))  # epoch 0's stale row 1 is not epoch 2's


def test_saf_loss_matches_the_authors_training_step_over_epochs():
    torch.manual_seed(0)
    n, c, bs = 40, 5, 8
    opts = dict(reinforce=0.3, temperature=5.0, kl_start_epoch=2, minus_epoch=2, kl_end_epoch=5)
    bank = np.zeros((n, opts["minus_epoch"] + 1, c), dtype=np.float32)
    ours = SAFLoss(n, c, lam=0.3, temperature=5.0, lag=2, start_epoch=2, end_epoch=5)
    model = torch.nn.Linear(3, c)
    x, y = torch.randn(n, 3), torch.randint(0, c, (n,))
    g = torch.Generator().manual_seed(1)
    seen_kl = 0
    for epoch in range(7):
        for idx in torch.randperm(n, generator=g).split(bs):
            out = model(x[idx])
            ref = _authors_step(bank, out, y[idx], idx.numpy(), epoch, **opts)
            got = ours(out, y[idx], idx, epoch)
            assert float(got.detach()) == pytest.approx(float(ref.detach()), rel=TOL, abs=TOL)
            seen_kl += ours.last_kl is not None
            with torch.no_grad():  # move the weights so the outputs change from epoch to epoch
                model.weight.add_(0.05 * torch.randn_like(model.weight))
    assert seen_kl == 2 * (n // bs)  # the KL ran in epochs 3 and 4 only (2 < e < 5)


def test_saf_loss_before_the_start_is_cross_entropy_and_then_adds_lambda_kl():
    torch.manual_seed(0)
    saf = SAFLoss(10, 3, lam=0.8, temperature=2.0, lag=1, start_epoch=0)
    idx = torch.arange(10)
    z0, z1, y = torch.randn(10, 3), torch.randn(10, 3), torch.randint(0, 3, (10,))
    assert torch.allclose(saf(z0, y, idx, 0), F.cross_entropy(z0, y))  # epoch 0 = E_start: no KL
    assert not saf.active(0) and saf.active(1)
    expected = F.cross_entropy(z1, y) + 0.8 * trajectory_loss(z1, z0, 2.0)
    assert torch.allclose(saf(z1, y, idx, 1), expected)  # the reference is epoch 0's outputs, not z1


def test_saf_loss_validates_its_schedule():
    with pytest.raises(ValueError, match="start_epoch"):
        SAFLoss(10, 3, lag=3, start_epoch=1)
    with pytest.raises(ValueError, match="lam"):
        SAFLoss(10, 3, lam=-1.0)


def test_departure_log_softmax_stays_finite_where_the_authors_softmax_log_is_not():
    out = torch.tensor([[0.0, 600.0]], requires_grad=True)  # softmax(out / 1)[0] underflows to 0 in float32
    ref = torch.tensor([[1.0, 0.0]])
    authors = F.kl_div(F.softmax(out, -1).log(), F.softmax(ref, -1), reduction="none").sum(-1).mean()
    assert not torch.isfinite(authors)
    ours = trajectory_loss(out, ref, temperature=1.0)
    assert torch.isfinite(ours)
    ours.backward()
    assert torch.isfinite(out.grad).all()


def test_the_trajectory_loss_slows_the_change_of_the_outputs_between_epochs():
    """SAF's promise: a sudden move of the outputs away from those of E~ epochs ago is penalised."""
    torch.manual_seed(0)
    n, c = 64, 4
    x, y = torch.randn(n, 6), torch.randint(0, c, (n,))
    idx = torch.arange(n)
    drift = {}
    for lam in (0.0, 10.0):
        torch.manual_seed(1)
        model = torch.nn.Linear(6, c)
        opt = torch.optim.SGD(model.parameters(), lr=0.1)
        saf = SAFLoss(n, c, lam=lam, temperature=1.0, lag=3, start_epoch=2)
        for epoch in range(20):
            opt.zero_grad()
            saf(model(x), y, idx, epoch).backward()  # one forward-backward pass per step
            opt.step()
        with torch.no_grad():
            drift[lam] = float(trajectory_loss(model(x), saf.memory.read(20, idx), 1.0))  # vs epoch 17
    assert drift[10.0] < 0.6 * drift[0.0]
