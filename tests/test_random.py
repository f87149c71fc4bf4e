"""autograd.random: the engine's generators, and take_uint32's pieces of one stream."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from autograd.random import take_uint32


def serial(bit_generator, n):
    return bit_generator.random_raw(-(-n // 2)).view(np.uint32)[:n]


@pytest.mark.parametrize("bits", [np.random.PCG64, np.random.PCG64DXSM, np.random.Philox,
                                  np.random.SFC64, np.random.MT19937])
@given(n=st.integers(0, 70), cuts=st.lists(st.integers(0, 70), max_size=5), data=st.data())
def test_pieces_read_in_any_order_are_one_sequential_draw(bits, n, cuts, data):
    """Cut [0, n) anywhere (odd cut points fall inside a 64-bit draw), read the pieces in a
    shuffled order from several threads: joined, they are ceil(n/2) raw draws split in halves."""
    edges = sorted({0, n, *(c for c in cuts if c <= n)})
    pieces = list(zip(edges[:-1], edges[1:]))
    order = data.draw(st.permutations(range(len(pieces))))
    read = take_uint32(np.random.Generator(bits(11)), n)
    with ThreadPoolExecutor(3) as pool:
        got = list(pool.map(lambda k: read(*pieces[k]), order))
    joined = np.concatenate([got[order.index(k)] for k in range(len(pieces))] or [np.zeros(0, np.uint32)])
    np.testing.assert_array_equal(joined, serial(bits(11), n))


@pytest.mark.parametrize("bits", [np.random.PCG64, np.random.SFC64])
def test_the_generator_moves_past_all_n(bits):
    generator, reference = np.random.Generator(bits(2)), bits(2)
    take_uint32(generator, 9)
    serial(reference, 9)
    assert generator.bit_generator.random_raw() == reference.random_raw()
