r"""Physically remove dead units and channels, so a structured pruner's model is really smaller.

A unit :math:`c` of a producing layer (a row of a ``Linear``, an output channel of a ``Conv2d``)
is *dead* when its output cannot change the network's output:

* its weight row is all zeros, so it outputs the constant :math:`b_c`; after the elementwise
  modules that follow (ReLU, max-pooling, dropout, eval-mode batch norm) it is still a constant
  :math:`a_c`, and the next layer adds :math:`W'_{:,c}\,a_c` to its bias (exact for a ``Linear``
  consumer; for a ``Conv2d`` consumer only when :math:`a_c = 0`, because zero padding makes a
  nonzero constant channel position-dependent), or
* every weight the next layer gives it is zero.

Dead units are removed from the producer (rows, bias, batch-norm entries) and from the consumer
(its input columns; after a ``Flatten`` the ``H W`` columns of each channel), and the consumer's
bias absorbs the constant. :func:`shrink` works on sequential chains - ``nn.Sequential`` (nested
allowed, ``nn.Flatten`` included) and :class:`zoo.training.SmallCNN` - and stops at any module it
does not know, leaving the layers around it untouched, so the result always computes the same
function as its input (in ``eval()`` mode).
"""

from __future__ import annotations

from typing import Any

import torch

from torch import nn

__all__ = ["shrink", "chain"]

_ELEMENTWISE = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.GELU, nn.Tanh, nn.Sigmoid, nn.Dropout, nn.Identity, nn.MaxPool2d,
                nn.BatchNorm1d, nn.BatchNorm2d)


class _Flatten(nn.Module):
    """Marker for SmallCNN's implicit ``flatten(1)`` before its classifier."""


def chain(model: nn.Module) -> list[nn.Module] | None:
    """The modules of ``model`` in forward order, when it is a chain :func:`shrink` understands."""
    from zoo.training.models import MLP, SmallCNN

    if isinstance(model, SmallCNN):
        inner = chain(model.features)
        return None if inner is None else [*inner, _Flatten(), model.classifier]
    if isinstance(model, nn.Sequential):
        out: list[nn.Module] = [_Flatten()] if isinstance(model, MLP) else []
        for m in model:
            sub = chain(m) if isinstance(m, nn.Sequential) else [m]
            if sub is None:
                return None
            out += sub
        return out
    return None


def _const_after(mods: list[nn.Module], value: torch.Tensor) -> torch.Tensor | None:
    """The constant each dead unit carries after the elementwise modules ``mods`` (None: unknown)."""
    v = value
    for m in mods:
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            v = (v - m.running_mean) / torch.sqrt(m.running_var + m.eps)
            if m.affine:
                v = v * m.weight + m.bias
        elif isinstance(m, (nn.Dropout, nn.Identity, nn.MaxPool2d, _Flatten)):
            pass
        elif isinstance(m, _ELEMENTWISE):
            v = m(v)
        else:
            return None
    return v


@torch.no_grad()
def shrink(model: nn.Module) -> dict[nn.Module, tuple[torch.Tensor, torch.Tensor]]:
    """Remove dead units in place; returns ``{layer: (kept output rows, kept input columns)}``.

    The indices refer to the layer's original rows and columns (for a ``Conv2d``: channels). Layers
    absent from the result were not changed. The model must be in plain form (no parametrizations).
    """
    mods = chain(model)
    if mods is None:
        return {}
    layers = [i for i, m in enumerate(mods) if isinstance(m, (nn.Linear, nn.Conv2d))]
    rows_kept: dict[nn.Module, torch.Tensor] = {}
    cols_kept: dict[nn.Module, torch.Tensor] = {}
    for a, b in zip(layers[:-1], layers[1:]):
        prod, cons, between = mods[a], mods[b], mods[a + 1 : b]
        if not all(isinstance(m, (*_ELEMENTWISE, _Flatten)) for m in between):
            continue
        if any(isinstance(m, nn.Conv2d) and m.groups != 1 for m in (prod, cons)):
            continue
        n_out = prod.weight.shape[0]
        w_cons = cons.weight
        if isinstance(cons, nn.Linear):
            if w_cons.shape[1] % n_out or (isinstance(prod, nn.Conv2d) and not any(isinstance(m, _Flatten) for m in between)):
                continue
            per = w_cons.shape[1] // n_out  # columns per unit: H*W after a flatten, else 1
            cols = w_cons.reshape(w_cons.shape[0], n_out, per)  # [out', unit, per]
            unused = (cols == 0).all(2).all(0)
        else:
            per = 1
            unused = (w_cons.transpose(0, 1).reshape(n_out, -1) == 0).all(1)
        row_zero = (prod.weight.reshape(n_out, -1) == 0).all(1)
        bias = prod.bias.detach() if prod.bias is not None else torch.zeros(n_out, device=prod.weight.device)
        const = _const_after(between, bias.clone())
        if const is None:
            foldable = torch.zeros_like(row_zero)
        elif isinstance(cons, nn.Conv2d):
            foldable = row_zero & (const == 0)
        else:
            foldable = row_zero
        dead = unused | foldable
        if not bool(dead.any()) or bool(dead.all()):
            continue
        keep = (~dead).nonzero().reshape(-1)
        fold = dead & ~unused  # removed but still read: their constant moves into the consumer's bias
        if bool(fold.any()) and isinstance(cons, nn.Linear):
            extra = (cols[:, fold, :] * const[fold][None, :, None]).sum((1, 2))
            if cons.bias is None:
                cons.bias = nn.Parameter(torch.zeros(w_cons.shape[0], device=extra.device, dtype=extra.dtype))
            cons.bias.add_(extra)
        _keep_rows(prod, keep)
        for m in between:
            if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
                _keep_bn(m, keep)
        col_keep = (keep[:, None] * per + torch.arange(per, device=keep.device)[None]).reshape(-1)
        _keep_cols(cons, col_keep)
        rows_kept[prod] = rows_kept.get(prod, torch.arange(n_out, device=keep.device))[keep]
        cols_kept[cons] = cols_kept.get(cons, torch.arange(w_cons.shape[1], device=keep.device))[col_keep]
    out = {}
    for m in {*rows_kept, *cols_kept}:
        out[m] = (rows_kept.get(m, torch.arange(m.weight.shape[0], device=m.weight.device)),
                  cols_kept.get(m, torch.arange(m.weight.shape[1], device=m.weight.device)))
    return out


def _keep_rows(m: nn.Linear | nn.Conv2d, keep: torch.Tensor) -> None:
    m.weight = nn.Parameter(m.weight.detach()[keep].clone())
    if m.bias is not None:
        m.bias = nn.Parameter(m.bias.detach()[keep].clone())
    if isinstance(m, nn.Linear):
        m.out_features = int(keep.numel())
    else:
        m.out_channels = int(keep.numel())


def _keep_cols(m: nn.Linear | nn.Conv2d, keep: torch.Tensor) -> None:
    m.weight = nn.Parameter(m.weight.detach()[:, keep].clone())
    if isinstance(m, nn.Linear):
        m.in_features = int(keep.numel())
    else:
        m.in_channels = int(keep.numel())


def _keep_bn(m: nn.BatchNorm1d | nn.BatchNorm2d, keep: torch.Tensor) -> None:
    for name in ("running_mean", "running_var"):
        setattr(m, name, getattr(m, name)[keep].clone())
    if m.affine:
        m.weight = nn.Parameter(m.weight.detach()[keep].clone())
        m.bias = nn.Parameter(m.bias.detach()[keep].clone())
    m.num_features = int(keep.numel())


