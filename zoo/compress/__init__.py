"""What a compressed model really is: export to compact storage, and measure what the user gets.

:func:`export` turns a trained (pruned and/or quantised) model into plain inference modules whose
state holds only what must be stored: dead units and channels physically removed
(:func:`shrink`), sparse weights as CSR, quantised weights as bit-packed integer codes with
per-channel scales. :func:`measure` reports, from that exported model, its parameter and
non-zero counts, stored bytes (payload and ``torch.save``), entropy-coded bytes, multiply-adds and
CPU latency: every compression claim of the zoo is stated in these numbers, never in mask counts.
"""

from zoo.compress.accounting import SizeReport, count_macs, cpu_latency_ms, entropy_coded_bytes, measure, serialized_bytes
from zoo.compress.export import PackedConv2d, PackedLinear, SparseLinear, export, fold_masks
from zoo.compress.pack import pack_codes, unpack_codes
from zoo.compress.shrink import shrink

__all__ = [
    "SizeReport", "measure", "count_macs", "cpu_latency_ms", "entropy_coded_bytes", "serialized_bytes",
    "export", "fold_masks", "PackedLinear", "PackedConv2d", "SparseLinear", "pack_codes", "unpack_codes", "shrink",
]
