# amaranth: UnusedElaboratable=no
"""hw.layout_pack: the one host-side packer of lib.data layouts (round trips, range checks, the
vectorized twin against the scalar packer, the field table)."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from amaranth import Shape, signed, unsigned
from amaranth.lib import data

from hw.array import SystolicArray
from hw.baseline.layout import float_layout
from hw.layout_pack import layout_fields, pack, pack_columns, unpack
from hw.pe.layout import operand_layout
from model.floats import FP32
from model.formats import MLSFormat


def _random_value(shape, rng):
    if isinstance(shape, data.ArrayLayout):
        return [_random_value(shape.elem_shape, rng) for _ in range(shape.length)]
    if isinstance(shape, data.Layout):
        return {name: _random_value(field.shape, rng) for name, field in shape}
    s = Shape.cast(shape)
    return rng.randrange(-(1 << (s.width - 1)), 1 << (s.width - 1)) if s.signed else rng.randrange(1 << s.width)


def _layouts():
    arrays = [SystolicArray("e2m1g3", 2, 3), SystolicArray("e0m3g1", 1, 4), SystolicArray(None, 3, 2, pe="fp32"),
              SystolicArray(None, 2, 2, pe="int8"), SystolicArray(None, 2, 1, pe="fp8-e4m3-e5m2")]
    return [layout for arr in arrays for layout in (arr.a_layout, arr.w_layout, arr.c_layout)]


def test_round_trip_and_bit_positions():
    rng = random.Random(5)
    for layout in _layouts():
        fields = layout_fields(layout)
        for _ in range(50):
            value = _random_value(layout, rng)
            bits = pack(layout, value)
            assert 0 <= bits < 1 << layout.size and unpack(layout, bits) == value
            # every leaf sits at its layout_fields offset, two's complement for signed leaves
            view = data.Const(layout, bits)
            for path, (offset, width) in fields.items():
                leaf = view
                for name in path.split("."):
                    leaf = leaf[int(name)] if name.isdigit() else leaf[name]
                assert (bits >> offset) & ((1 << width) - 1) == int(leaf) & ((1 << width) - 1), path
    # the IEEE order of an FP32 word: man in the low bits, then exp, then sign
    assert pack(float_layout(FP32), {"sign": 1, "exp": 127, "man": 1}) == 0xBF800001
    assert unpack(float_layout(FP32), 0x3F800000) == {"man": 0, "exp": 127, "sign": 0}
    assert pack(signed(8), -1) == 0xFF and unpack(signed(8), 0x80) == -128 and unpack(unsigned(4), 0x1F) == 15


def test_layout_fields():
    fmt = MLSFormat.parse("e2m1g3")
    assert layout_fields(operand_layout(fmt)) == {"elem.man": (0, 1), "elem.exp": (1, 2), "elem.sign": (3, 1),
                                                  "g": (4, 3)}
    arr = SystolicArray(None, 1, 2, pe="int8")
    assert layout_fields(arr.c_layout) == {"data.0": (0, 32), "data.1": (32, 32), "overflow": (64, 2), "last": (66, 1)}
    assert layout_fields(signed(8)) == {}


def test_errors():
    layout = SystolicArray("e2m1g3", 2, 2).c_layout
    with pytest.raises(ValueError, match=r"^1152921504606846976 does not fit signed\(43\)$"):
        pack(layout, {"data": [1 << 60, 0]})
    with pytest.raises(ValueError, match=r"^-1 does not fit unsigned\(1\)$"):
        pack(layout, {"last": -1})
    with pytest.raises(ValueError, match=r"^no field\(s\) \['bogus'\] in StructLayout"):
        pack(layout, {"bogus": 1})
    with pytest.raises(ValueError, match=r"^array layout of 2 elements, got 3 values$"):
        pack(layout, {"data": [0, 0, 0]})
    with pytest.raises(TypeError, match=r"^a field of unsigned\(1\) takes an int, not 0.5$"):
        pack(layout, {"last": 0.5})
    with pytest.raises(ValueError, match=r"^field 'g': values in \[0, 8\] do not fit unsigned\(3\)$"):
        pack_columns(operand_layout(MLSFormat.parse("e2m1g3")), {"g": np.array([0, 8])})
    with pytest.raises(ValueError, match=r"^no field\(s\) \['elem'\] in StructLayout"):
        pack_columns(operand_layout(MLSFormat.parse("e2m1g3")), {"elem": np.array([0])})


@pytest.mark.parametrize("lib", ["numpy", "torch"])
def test_pack_columns_matches_pack(lib):
    rng = random.Random(11)
    for fmt in ("e2m1g3", "e3m3g3", "e0m3g1"):
        layout = operand_layout(MLSFormat.parse(fmt))
        values = [_random_value(layout, rng) for _ in range(300)]
        columns = {path: [v["elem"][path[5:]] if path.startswith("elem.") else v[path] for v in values]
                   for path in layout_fields(layout)}
        columns = {k: (np.array(c, dtype=np.int64) if lib == "numpy" else torch.tensor(c, dtype=torch.int64))
                   for k, c in columns.items()}
        words = pack_columns(layout, columns)
        assert [int(w) for w in words] == [pack(layout, v) for v in values]
    # signed leaves in two's complement, and a plain shape under the path ""
    words = pack_columns(signed(8), {"": np.array([-128, -1, 0, 127])})
    assert words.tolist() == [0x80, 0xFF, 0, 0x7F]
