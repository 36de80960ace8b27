"""Grouping geometry (docs/numerics.md §1) against brute-force loops."""

import itertools

import pytest
import torch

from model.grouping import Grouping


def brute_group_ids(shape, grouping):
    """Group coordinates per element, straight from the definition."""
    axis = grouping.axis % len(shape)
    block = shape[axis] if grouping.block is None else grouping.block
    ids = {}
    for index in itertools.product(*map(range, shape)):
        key = index[:axis] + (index[axis] // block,)
        if not grouping.span_trailing:
            key += index[axis + 1:]
        ids[index] = key
    return ids


@pytest.mark.parametrize("shape, grouping, group_shape", [
    ((2, 6, 3, 3), Grouping.channel(), (2, 6)),
    ((2, 6, 3, 3), Grouping.channel(4), (2, 2)),
    ((8, 3, 3, 3), Grouping.channel(2), (8, 2)),
    ((5, 70), Grouping.blocks(32), (5, 3)),
    ((70, 5), Grouping.blocks(32, 0), (3, 5)),
    ((4, 5, 6), Grouping.per_tensor(), (1,)),
    ((4, 5, 6), Grouping(axis=-2, block=2, span_trailing=False), (4, 3, 6)),
])
def test_geometry_matches_brute_force(shape, grouping, group_shape):
    assert grouping.group_shape(shape) == group_shape
    x = torch.rand(shape, generator=torch.Generator().manual_seed(0))
    amax = grouping.group_amax(x)
    ids = brute_group_ids(shape, grouping)
    expected = {}
    for index, key in ids.items():
        expected[key] = max(expected.get(key, 0.0), float(x[index]))
    flat_keys = list(itertools.product(*map(range, group_shape)))
    if grouping == Grouping.per_tensor():
        flat_keys = [(0,)]
    assert [float(amax[k]) for k in flat_keys] == [expected[k] for k in flat_keys]
    expanded = grouping.expand(amax, shape)
    assert all(float(expanded[index]) == expected[key] for index, key in ids.items())


@pytest.mark.parametrize("text", ["channel", "channel:4", "block:32", "block:16@0", "tensor"])
def test_parse_round_trip(text):
    assert str(Grouping.parse(text)) == text


@pytest.mark.parametrize("text, message", [
    ("rows", "is not one of 'channel"),
    ("block", "is not one of"),
    ("channel:0", "grouping block must be at least 1, got 0"),
    ("block:x", "grouping 'block:x'"),
])
def test_parse_errors(text, message):
    with pytest.raises(ValueError, match=message):
        Grouping.parse(text)


def test_shape_errors():
    with pytest.raises(ValueError, match=r"grouping axis 2 is out of range for a tensor of shape \(3, 4\)"):
        Grouping(axis=2).group_shape((3, 4))
    with pytest.raises(ValueError, match=r"group tensor has shape \(3,\), expected \(3, 1\)"):
        Grouping.channel().expand(torch.zeros(3), (3, 1, 2))
