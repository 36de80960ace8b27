"""Host-side bit packing from the ``amaranth.lib.data`` layouts the gateware uses: the one packer.

A Verilog port whose shape is a layout is one flat bit vector, so every host, testbench and
manifest that talks to it needs the layout's field offsets. They all read them from the same
layout object through this module, so a layout change in ``hw/`` cannot desynchronize them.

- :func:`pack` / :func:`unpack`: one value (an int for a plain shape, a dict for a struct, a list
  for an array layout, nested) to and from its raw bit pattern, by ``Layout.const(...).as_bits()``
  and ``Layout.from_bits(...)``. Every leaf is range-checked: nothing is truncated silently.
- :func:`pack_columns`: the same packing for many values at once (numpy or torch integer arrays
  per leaf field), for testbench stimulus.
- :func:`layout_fields`: ``{field path: (offset, width)}``, the flattened field table.
"""

from __future__ import annotations

from amaranth import Shape
from amaranth.lib import data

__all__ = ["pack", "unpack", "pack_columns", "layout_fields", "shape_width"]


def shape_width(shape) -> int:
    """Bit width of a shape or layout."""
    return Shape.cast(shape).width


def _check_leaf(shape, value) -> int:
    shape = Shape.cast(shape)
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            value = int(value.__index__())
        except AttributeError:
            raise TypeError(f"a field of {shape} takes an int, not {value!r}") from None
    lo, hi = (-(1 << (shape.width - 1)), 1 << (shape.width - 1)) if shape.signed else (0, 1 << shape.width)
    if not lo <= value < hi:
        raise ValueError(f"{value} does not fit {shape}")
    return value


def _checked(shape, value):
    """``value`` validated against ``shape``: right lengths, known field names, leaves in range."""
    if isinstance(shape, data.ArrayLayout):
        if len(value) != shape.length:
            raise ValueError(f"array layout of {shape.length} elements, got {len(value)} values")
        return [_checked(shape.elem_shape, v) for v in value]
    if isinstance(shape, data.Layout):
        names = {name for name, _ in shape}
        if set(value) - names:
            raise ValueError(f"no field(s) {sorted(set(value) - names)} in {shape!r}")
        return {name: _checked(field.shape, value[name]) for name, field in shape if name in value}
    return _check_leaf(shape, value)


def pack(shape, value) -> int:
    """``value`` as the raw (unsigned) bit pattern of ``shape``; struct fields left out are 0."""
    value = _checked(shape, value)
    if isinstance(shape, data.Layout):
        return shape.const(value).as_bits()
    return value & ((1 << shape_width(shape)) - 1)


def _plain(value):
    if isinstance(value, data.Const):
        layout = value.shape()
        if isinstance(layout, data.ArrayLayout):
            return [_plain(value[i]) for i in range(layout.length)]
        return {name: _plain(value[name]) for name, _ in layout}
    return int(value)


def unpack(shape, bits: int):
    """Inverse of :func:`pack`: signed fields come back negative; bits above the shape are ignored."""
    bits = int(bits) & ((1 << shape_width(shape)) - 1)
    if isinstance(shape, data.Layout):
        return _plain(shape.from_bits(bits))
    shape = Shape.cast(shape)
    return bits - (1 << shape.width) if shape.signed and bits >> (shape.width - 1) else bits


def layout_fields(shape, base: int = 0) -> dict:
    """``{"a.b.0.c": (offset, width)}`` of every leaf field of a layout (array elements by index);
    ``{}`` for a plain shape."""
    out = {}
    if not isinstance(shape, data.Layout):
        return out
    for name, field in shape:
        if isinstance(field.shape, data.Layout):
            for path, (offset, width) in layout_fields(field.shape, base + field.offset).items():
                out[f"{name}.{path}"] = (offset, width)
        else:
            out[str(name)] = (base + field.offset, shape_width(field.shape))
    return out


def pack_columns(shape, columns: dict):
    """Pack many values at once: ``columns`` maps leaf paths of :func:`layout_fields` (``"g"``,
    ``"elem.man"``, ...) to integer arrays of one shape (numpy or torch, a wide enough integer
    dtype); leaves not given are 0. Returns the packed words, an array of the same shape. Values
    are range-checked like :func:`pack` (two's complement for signed leaves)."""
    fields = layout_fields(shape) if isinstance(shape, data.Layout) else {"": (0, shape_width(shape))}
    unknown = set(columns) - set(fields)
    if unknown:
        raise ValueError(f"no field(s) {sorted(unknown)} in {shape!r}")
    word = None
    for path, column in columns.items():
        offset, width = fields[path]
        leaf = _leaf_shape(shape, path)
        lo, hi = (-(1 << (width - 1)), 1 << (width - 1)) if leaf.signed else (0, 1 << width)
        if column.reshape(-1).shape[0] and (column.min() < lo or column.max() >= hi):
            raise ValueError(f"field {path!r}: values in [{int(column.min())}, {int(column.max())}] do not fit {leaf}")
        part = (column & ((1 << width) - 1)) << offset
        word = part if word is None else word | part
    return word


def _leaf_shape(shape, path: str) -> Shape:
    for name in filter(None, path.split(".")):
        shape = shape[int(name)].shape if isinstance(shape, data.ArrayLayout) else shape[name].shape
    return Shape.cast(shape)
