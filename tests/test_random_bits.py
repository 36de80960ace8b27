"""Random bits for stochastic rounding (model/random_bits.py): the torch.randint stream, drawn faster."""

import torch

from model.random_bits import random_bits_like


# -- the FP32-arithmetic fast path of fake_quantize and the split random draws -------------------
def test_random_bits_like_is_the_torch_randint_stream():
    """Split 64-bit draws give torch.randint's values element for element and leave the generator
    where randint leaves it (odd sizes too), for the global and for a given generator."""
    for sr_bits in (1, 5, 8, 13, 24):
        for shape in ((1,), (7,), (2, 3, 3), (4, 6, 5, 5), (3, 64)):
            torch.manual_seed(sr_bits)
            ref, ref_after = torch.randint(0, 1 << sr_bits, shape, dtype=torch.int32), torch.rand(3)
            torch.manual_seed(sr_bits)
            bits, after = random_bits_like(shape, sr_bits), torch.rand(3)
            assert bits.dtype == torch.int32 and torch.equal(bits, ref) and torch.equal(after, ref_after)
            g_ref, g = torch.Generator().manual_seed(99), torch.Generator().manual_seed(99)
            ref = torch.randint(0, 1 << sr_bits, shape, dtype=torch.int32, generator=g_ref)
            assert torch.equal(random_bits_like(shape, sr_bits, g), ref)
            assert torch.equal(torch.rand(2, generator=g), torch.rand(2, generator=g_ref))
