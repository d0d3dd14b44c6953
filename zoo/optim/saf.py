"""SAF: sharpness-aware training for free, a trajectory loss on outputs stored epochs earlier.

Jiawei Du, Daquan Zhou, Jiashi Feng, Vincent Y. F. Tan, Joey Tianyi Zhou. *Sharpness-Aware
Training for Free*. NeurIPS 2022. https://arxiv.org/abs/2205.14083 (authors' code, built into a
copy of timm: https://github.com/AngusDujw/SAF, ``SAF_train.py``).

SAF replaces SAM's second forward-backward pass by a loss on the training trajectory. It keeps,
for every training example ``x_i``, the network's outputs from earlier epochs, and from epoch
``E_start`` on it adds to the cross-entropy the KL divergence between the softened outputs
recorded ``E~`` epochs ago and the current ones (the paper's trajectory loss; ``Y^(e)`` is the
bank of outputs written during epoch ``e``)::

    L_tra(w; B) = lambda / |B| * sum_{i in B} tau^2 * KL( softmax(y_i^(e - E~) / tau) || softmax(f_w(x_i) / tau) )
    L_SAF(w; B) = L_CE(w; B) + L_tra(w; B)                      (epochs E_start < e < E_end; else L_CE)
    y_i^(e) <- f_w(x_i), detached                                 (every step, every epoch)

The paper shows that ``L_tra`` is, to first order, the sharpness term
``L(w_{e-E~}) - L(w_e)`` of the weights ``E~`` epochs apart (a sudden drop of the training loss
is penalised), so minimising ``L_SAF`` by SGD bounds the sharpness without a second pass: the only
extra work is one memory read and write per example and the KL, so a step costs about as much as
an SGD step (the paper's ImageNet throughput: SAF close to SGD, SAM about half of it).

Notation: ``lam`` -> ``lambda`` (the authors' ``--reinforce``), ``temperature`` -> ``tau``,
``lag`` -> ``E~`` (``--minus_epoch``), ``start_epoch`` -> ``E_start`` (``--kl_start_epoch``),
``end_epoch`` -> ``E_end`` (``--kl_end_epoch``), epochs counted from 0 as in the authors' loop.

Matches the authors' ``train_one_epoch``: the outputs are recorded in training mode from the
same forward pass that is trained on, into a ring of ``E~ + 1`` epoch slots (slot ``e mod
(E~ + 1)``; the reference is read from slot ``(e - E~) mod (E~ + 1)``); the KL is
``F.kl_div(log_softmax(f / tau), softmax(y / tau))`` summed over classes, averaged over the
batch and scaled by ``tau^2`` (the code's factor, the usual one of distillation losses);
``E_start < e < E_end`` strictly. Departures: the bank lives on the outputs' device in their
dtype (the authors keep a float32 NumPy array on the host); the log-probabilities are taken with
``log_softmax`` (the authors' ``softmax(.).log()`` can give ``-inf`` where a probability
underflows); the memory-efficient variant MESA (an EMA teacher instead of the bank) is not here.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["OutputMemory", "trajectory_loss", "SAFLoss"]


class OutputMemory:
    """Per-example outputs of the last ``lag + 1`` epochs, keyed by example index (SAF's ``Y^(e)``).

    A ring of ``lag + 1`` slots of shape ``(n_examples, n_outputs)``: epoch ``e`` writes slot
    ``e mod (lag + 1)``, and the outputs of epoch ``e - lag`` are still in slot
    ``(e - lag) mod (lag + 1)`` while epoch ``e`` is being written (the authors' ``train_logits``
    array, ``[N, lag + 1, C]``). Memory: ``(lag + 1) * n_examples * n_outputs`` numbers.

    Args:
        n_examples: Training-set size ``N`` (indices are ``0..N-1``).
        n_outputs: Outputs per example (the number of classes).
        lag: ``E~ >= 1``, how many epochs back the reference is read.
        device: Where the bank lives (that of the outputs).
        dtype: The bank's dtype.
    """

    def __init__(self, n_examples: int, n_outputs: int, lag: int, device: str | torch.device = "cpu",
                 dtype: torch.dtype = torch.float32) -> None:
        if lag < 1:
            raise ValueError(f"OutputMemory: lag must be >= 1 (the reference epoch e - lag), got {lag}")
        if n_examples < 1 or n_outputs < 1:
            raise ValueError(f"OutputMemory: need n_examples, n_outputs >= 1, got {n_examples}, {n_outputs}")
        self.lag = int(lag)
        self.bank = torch.zeros(self.lag + 1, n_examples, n_outputs, device=device, dtype=dtype)
        self.written = torch.zeros(self.lag + 1, n_examples, dtype=torch.bool, device=device)
        self._slot_epoch = [-1] * (self.lag + 1)  # which epoch each slot holds

    def _slot(self, epoch: int) -> int:
        return epoch % (self.lag + 1)

    @torch.no_grad()
    def write(self, epoch: int, index: torch.Tensor, outputs: torch.Tensor) -> None:
        """Store ``outputs`` (detached) of the examples ``index`` as epoch ``epoch``'s."""
        s = self._slot(epoch)
        if self._slot_epoch[s] != epoch:  # a new epoch reuses the slot of epoch - lag - 1
            self._slot_epoch[s] = epoch
            self.written[s] = False
        self.bank[s, index] = outputs.detach().to(self.bank.dtype)
        self.written[s, index] = True

    def read(self, epoch: int, index: torch.Tensor) -> torch.Tensor:
        """The outputs of ``index`` recorded during epoch ``epoch - lag`` (SAF's ``y^(e - E~)``).

        Raises:
            KeyError: if epoch ``epoch - lag`` was not recorded for every example in ``index``.
        """
        ref = epoch - self.lag
        s = self._slot(ref)
        if ref < 0 or self._slot_epoch[s] != ref or not bool(self.written[s, index].all()):
            raise KeyError(f"OutputMemory: no outputs of epoch {ref} for every requested example")
        return self.bank[s, index]


def trajectory_loss(logits: torch.Tensor, past_logits: torch.Tensor, temperature: float = 5.0) -> torch.Tensor:
    r"""``tau^2 * mean_i KL(softmax(past_i / tau) || softmax(logits_i / tau))`` (SAF's ``L_tra`` / lambda).

    The past outputs are the target (no gradient flows into them), as in the authors'
    ``F.kl_div(log q, p)``.

    Args:
        logits: Current outputs ``f_w(x_i)``, shape ``(B, C)``.
        past_logits: Outputs recorded ``E~`` epochs earlier, the same shape.
        temperature: ``tau > 0``.
    """
    if not temperature > 0:
        raise ValueError(f"trajectory_loss: temperature must be > 0, got {temperature}")
    log_q = F.log_softmax(logits / temperature, dim=-1)
    p = F.softmax(past_logits.detach().to(logits.dtype) / temperature, dim=-1)
    kl = F.kl_div(log_q, p, reduction="none").sum(-1)  # sum_c p (log p - log q), per example
    return kl.mean() * temperature**2


class SAFLoss:
    r"""The SAF training objective (Du et al., NeurIPS 2022) with its per-example output memory.

    ```text
    y_i^(e) <- f_w(x_i)                                                     (recorded, every epoch)
    L = CE(f_w(x_B), t_B) + lambda * tau^2 * mean_{i in B} KL(softmax(y_i^(e-E~)/tau) || softmax(f_w(x_i)/tau))
                                                   (the second term only for E_start < e < E_end)
    ```

    Call it once per mini-batch with the batch's logits, targets, example indices (rows of the
    training set) and the 0-based epoch; minimise the result with the base optimizer (SGD in the
    paper). One forward and one backward pass per step, as SGD.

    Args:
        n_examples: Training-set size.
        num_classes: Outputs per example.
        lam: ``lambda``, the trajectory loss' weight (the authors' README: 0.3 or 0.8; their
            script's default 0.16).
        temperature: ``tau`` (the authors: 5, "no need to tune").
        lag: ``E~``, the reference is the outputs of ``E~`` epochs ago (the authors: 2 or 3).
        start_epoch: ``E_start``; the KL applies from epoch ``E_start + 1`` on (authors: 5, or
            30% of the epochs). Must be ``>= lag - 1`` so that the reference exists.
        end_epoch: ``E_end``; no KL from this epoch on (``None``: never stops).
        device: Where the memory lives.

    Example:
        >>> import torch
        >>> saf = SAFLoss(n_examples=100, num_classes=3, lam=0.3, temperature=5.0, lag=1, start_epoch=0)
        >>> logits, y, idx = torch.randn(10, 3, requires_grad=True), torch.randint(0, 3, (10,)), torch.arange(10)
        >>> loss0 = saf(logits, y, idx, epoch=0)      # cross-entropy only; records the outputs
        >>> loss1 = saf(logits, y, idx, epoch=1)      # + lambda * KL to epoch 0's outputs
        >>> bool(torch.isclose(loss0, loss1))         # the same outputs: KL = 0
        True
    """

    def __init__(self, n_examples: int, num_classes: int, *, lam: float = 0.3, temperature: float = 5.0,
                 lag: int = 3, start_epoch: int = 5, end_epoch: int | None = None,
                 device: str | torch.device = "cpu") -> None:
        if not lam >= 0:
            raise ValueError(f"SAFLoss: lam must be >= 0, got {lam}")
        if start_epoch < lag - 1:
            raise ValueError(f"SAFLoss: start_epoch ({start_epoch}) must be >= lag - 1 ({lag - 1}): "
                             "the KL needs the outputs of epoch e - lag")
        self.lam = float(lam)
        self.temperature = float(temperature)
        self.start_epoch = int(start_epoch)
        self.end_epoch = end_epoch
        self.memory = OutputMemory(n_examples, num_classes, lag, device=device)
        self.last_kl: torch.Tensor | None = None  # the last batch's trajectory loss (before lambda)

    def active(self, epoch: int) -> bool:
        """Whether the trajectory loss applies in ``epoch`` (``E_start < e < E_end``)."""
        return epoch > self.start_epoch and (self.end_epoch is None or epoch < self.end_epoch)

    def __call__(self, logits: torch.Tensor, target: torch.Tensor, index: torch.Tensor, epoch: int) -> torch.Tensor:
        """``L_SAF`` of one mini-batch; records its outputs as epoch ``epoch``'s."""
        self.memory.write(epoch, index, logits)  # y^(e), before the reference is read (authors' order)
        loss = F.cross_entropy(logits, target)
        self.last_kl = None
        if self.active(epoch):
            kl = trajectory_loss(logits, self.memory.read(epoch, index), self.temperature)
            self.last_kl = kl.detach()
            loss = loss + self.lam * kl
        return loss
