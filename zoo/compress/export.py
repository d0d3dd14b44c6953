r"""Export a trained model to what is actually stored and run: real zeros removed, integers packed.

:func:`export` returns a new model (the input is not changed), built in three steps:

1. **fold** (:func:`fold_masks`): every weight parametrization (a PDP or magnitude mask, a gate,
   a quantiser) is baked into a plain weight; a :class:`zoo.quant.Quantizer` that ends a weight's
   chain also yields its integer codes, scales and per-channel bit depths;
2. **shrink** (:func:`zoo.compress.shrink`): dead units and channels are removed from their layer
   and from the next one, so structured sparsity becomes smaller layers;
3. **pack**: a quantised layer becomes :class:`PackedLinear`/:class:`PackedConv2d`, which store
   bit-packed codes (:func:`zoo.compress.pack_codes`) per bit depth, one ``float32`` scale per
   kept row and the ``float32`` bias; a float layer whose CSR form (``float32`` values, ``int16``
   or ``int32`` column indices, ``int32`` row pointers) is smaller than its dense form becomes
   :class:`SparseLinear`/:class:`SparseConv2d`; any other layer stays a dense ``nn.Linear``/``nn.Conv2d``.

The exported state dict (``state_dict()``) holds only the stored tensors; the float weight the
forward pass multiplies with is rebuilt once at construction (a non-persistent buffer), except in
:class:`SparseLinear`, whose forward pass is a sparse-dense product (``torch.sparse.mm``), so its
latency is what sparse storage really gives on a CPU. There is no fast sparse convolution on a
CPU in torch: :class:`SparseConv2d` stores CSR and computes densely.
"""

from __future__ import annotations

import copy
import warnings

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize

from zoo.compress.pack import pack_codes, unpack_codes
from zoo.compress.shrink import shrink

__all__ = ["export", "fold_masks", "PackedLinear", "PackedConv2d", "SparseLinear", "SparseConv2d", "QuantInfo"]

QuantInfo = tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # codes, scale per row, bits per row


@torch.no_grad()
def fold_masks(model: nn.Module) -> dict[nn.Module, QuantInfo]:
    """Bake every weight parametrization of ``model`` into a plain weight, in place.

    Returns the integer codes of the layers whose weight chain ends in a
    :class:`zoo.quant.Quantizer`; the folded weight of those equals ``codes * scale`` exactly.
    """
    from zoo.quant.uniform import Quantizer, dequantize

    quant: dict[nn.Module, QuantInfo] = {}
    for m in list(model.modules()):
        if not parametrize.is_parametrized(m):
            continue
        values: dict[str, torch.Tensor] = {}
        for name in list(m.parametrizations):
            chain = list(m.parametrizations[name])
            n_quant = sum(isinstance(p, Quantizer) for p in chain)
            if n_quant and name == "weight" and isinstance(m, (nn.Linear, nn.Conv2d)):
                if not isinstance(chain[-1], Quantizer) or n_quant > 1:
                    raise ValueError(f"{type(m).__name__}.weight: a quantiser must be the last (and only) "
                                     "quantising parametrization of the weight; register masks before it")
                x = m.parametrizations.weight.original
                for p in chain[:-1]:
                    x = p(x)
                codes, scale, bits = chain[-1].export_codes(x)
                quant[m] = (codes, scale.float(), bits)
                values[name] = dequantize(codes, scale).to(x.dtype)
            else:
                values[name] = getattr(m, name).detach()
        # Undo the parametrization by hand: torch's remove_parametrizations deletes the property from
        # the generated class, which a deep copy of the model shares with the original.
        m.__class__ = m.__class__.__bases__[0]
        del m._modules["parametrizations"]
        for name, v in values.items():
            setattr(m, name, nn.Parameter(v.clone()))
    return quant


class _Stored(nn.Module):
    """Common parts of the exported layers: the bias, and the cached float weight."""

    def _set_weight(self, w: torch.Tensor) -> None:
        self.register_buffer("weight", w, persistent=False)

    def stored_params(self) -> int:
        """The dense parameter count of this layer (weights and bias)."""
        return self.weight.numel() + (0 if self.bias is None else self.bias.numel())

    def nonzero(self) -> int:
        return int((self.weight != 0).sum()) + (0 if self.bias is None else int((self.bias != 0).sum()))


class _Packed(_Stored):
    def __init__(self, codes: torch.Tensor, scale: torch.Tensor, bits: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.shape = tuple(codes.shape)
        rows = codes.reshape(codes.shape[0], -1)
        self.depths = sorted({int(b) for b in bits.tolist() if int(b) > 0})
        for b in self.depths:
            idx = (bits == b).nonzero().reshape(-1)
            self.register_buffer(f"rows_{b}", idx.to(torch.int16 if codes.shape[0] < 32768 else torch.int32))
            self.register_buffer(f"codes_{b}", pack_codes(rows[idx], b))
        self.register_buffer("scale", scale.detach().float().clone())
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())
        self._set_weight(self.decode())

    def decode(self) -> torch.Tensor:
        """The float weight from the stored codes and scales (zero rows where the depth is 0)."""
        fan = int(torch.tensor(self.shape[1:]).prod()) if len(self.shape) > 1 else 1
        q = torch.zeros(self.shape[0], fan, dtype=torch.long, device=self.scale.device)
        for b in self.depths:
            idx = getattr(self, f"rows_{b}").long()
            q[idx] = unpack_codes(getattr(self, f"codes_{b}"), b, idx.numel() * fan).reshape(idx.numel(), fan)
        return (q.float() * self.scale[:, None]).reshape(self.shape)

    def bits_per_row(self) -> torch.Tensor:
        out = torch.zeros(self.shape[0], dtype=torch.long)
        for b in self.depths:
            out[getattr(self, f"rows_{b}").long()] = b
        return out


class PackedLinear(_Packed):
    """A ``Linear`` stored as bit-packed integer codes, per-row scales and a float bias."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight, self.bias)


class PackedConv2d(_Packed):
    """A ``Conv2d`` stored as bit-packed integer codes, per-channel scales and a float bias."""

    def __init__(self, conv: nn.Conv2d, codes: torch.Tensor, scale: torch.Tensor, bits: torch.Tensor) -> None:
        super().__init__(codes, scale, bits, conv.bias)
        self.stride, self.padding, self.dilation, self.groups = conv.stride, conv.padding, conv.dilation, conv.groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


def _csr(w2d: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    with warnings.catch_warnings():  # "sparse CSR support is in beta": known, and tested here
        warnings.simplefilter("ignore", UserWarning)
        s = w2d.detach().float().to_sparse_csr()
    col_dtype = torch.int16 if w2d.shape[1] < 32768 else torch.int32
    return s.crow_indices().to(torch.int32), s.col_indices().to(col_dtype), s.values().clone()


def _csr_bytes(w: torch.Tensor) -> int:
    w2 = w.reshape(w.shape[0], -1)
    nnz = int((w2 != 0).sum())
    return nnz * (4 + (2 if w2.shape[1] < 32768 else 4)) + 4 * (w2.shape[0] + 1)


class _Sparse(_Stored):
    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__()
        self.shape = tuple(weight.shape)
        crow, col, val = _csr(weight.reshape(weight.shape[0], -1))
        self.register_buffer("crow", crow)
        self.register_buffer("col", col)
        self.register_buffer("values", val)
        self.register_buffer("bias", None if bias is None else bias.detach().float().clone())
        self._set_weight(self.csr().to_dense().reshape(self.shape))

    def csr(self) -> torch.Tensor:
        n_cols = int(torch.tensor(self.shape[1:]).prod())
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(self.crow, self.col.to(torch.int32), self.values,
                                           size=(self.shape[0], n_cols), device=self.values.device,
                                           check_invariants=False)


class SparseLinear(_Sparse):
    """A ``Linear`` stored in CSR; the forward pass is a sparse-dense product."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None) -> None:
        super().__init__(weight, bias)
        self._w_csr = self.csr()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = torch.sparse.mm(self._w_csr, x.reshape(-1, x.shape[-1]).t()).t()
        return y if self.bias is None else y + self.bias


class SparseConv2d(_Sparse):
    """A ``Conv2d`` stored in CSR (computed densely: torch has no fast sparse convolution on a CPU)."""

    def __init__(self, conv: nn.Conv2d) -> None:
        super().__init__(conv.weight, conv.bias)
        self.stride, self.padding, self.dilation, self.groups = conv.stride, conv.padding, conv.dilation, conv.groups

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation, self.groups)


def _replace(model: nn.Module, old: nn.Module, new: nn.Module) -> None:
    for parent in model.modules():
        for name, child in parent.named_children():
            if child is old:
                setattr(parent, name, new)
                return
    raise KeyError("layer not found in model")


@torch.no_grad()
def export(model: nn.Module, *, sparse: bool = True, shrink_units: bool = True) -> nn.Module:
    """The exported (stored, runnable) form of ``model``, in ``eval()`` mode; ``model`` is unchanged.

    ``sparse=False`` keeps float layers dense whatever their zeros; ``shrink_units=False`` keeps
    dead units (to measure what shrinking gives).
    """
    out = copy.deepcopy(model).eval()
    quant = fold_masks(out)
    kept = shrink(out) if shrink_units else {}
    for layer in [m for m in out.modules() if isinstance(m, (nn.Linear, nn.Conv2d))]:
        if layer in quant:
            codes, scale, bits = quant[layer]
            if layer in kept:
                rows, cols = kept[layer]
                codes, scale, bits = codes[rows][:, cols], scale[rows], bits[rows]
            new: nn.Module = (PackedLinear(codes, scale, bits, layer.bias) if isinstance(layer, nn.Linear)
                              else PackedConv2d(layer, codes, scale, bits))
        elif sparse and _csr_bytes(layer.weight) < 4 * layer.weight.numel():
            new = SparseLinear(layer.weight, layer.bias) if isinstance(layer, nn.Linear) else SparseConv2d(layer)
        else:
            continue
        _replace(out, layer, new)
    return out.eval()
