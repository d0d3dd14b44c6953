"""Bit-packing: exact round trip and the ceil(n b / 8) size."""

import pytest
import torch

from zoo.compress import pack_codes, unpack_codes


@pytest.mark.parametrize("bits", [1, 2, 3, 4, 5, 7, 8, 12, 16])
def test_round_trip_and_size(bits):
    g = torch.Generator().manual_seed(bits)
    q = torch.randint(-(1 << (bits - 1)), 1 << (bits - 1), (1001,), generator=g)
    packed = pack_codes(q, bits)
    assert packed.dtype == torch.uint8 and packed.numel() == -(-1001 * bits // 8)
    assert torch.equal(unpack_codes(packed, bits, 1001), q)


def test_out_of_range_codes_are_refused():
    with pytest.raises(ValueError, match="out of the 3-bit range"):
        pack_codes(torch.tensor([4]), 3)
