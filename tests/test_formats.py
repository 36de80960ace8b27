"""MLSFormat: naming, derived quantities and their edges (docs/numerics.md §1, §3)."""

from fractions import Fraction

import pytest

from model.formats import MAX_EXP_BITS, MAX_GROUP_BITS, MAX_MAN_BITS, MLSFormat

ALL_FORMATS = [
    MLSFormat(e, m, g)
    for e in range(MAX_EXP_BITS + 1)
    for m in range(MAX_MAN_BITS + 1)
    for g in range(MAX_GROUP_BITS + 1)
    if e + m > 0
]
SMALL_FORMATS = [f for f in ALL_FORMATS if f.exp_bits <= 3 and f.man_bits <= 3 and f.group_bits <= 3]


def test_acceptance_example():
    fmt = MLSFormat.parse("e2m1g3")
    assert (str(fmt), fmt.elem_max, fmt.grid().tolist(), fmt.acc_bits_exact(131072)) == (
        "e2m1g3", 6.0, [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0], 40)


@pytest.mark.parametrize("fmt", ALL_FORMATS, ids=str)
def test_name_round_trip(fmt):
    assert MLSFormat.parse(str(fmt)) == fmt
    assert MLSFormat.parse(str(fmt).upper()) == fmt


@pytest.mark.parametrize("name, message", [
    ("e2m1", "does not match 'e<E>m<M>g<G>'"),
    ("fp8", "does not match"),
    ("e2m1g3x", "does not match"),
    ("e0m0g3", r"exp_bits \+ man_bits must be at least 1, got 0"),
    ("e6m1g3", r"exp_bits must be in \[0, 5\], got 6"),
    ("e2m11g3", r"man_bits must be in \[0, 10\], got 11"),
    ("e2m1g7", r"group_bits must be in \[0, 6\], got 7"),
])
def test_parse_errors_name_the_value_and_limit(name, message):
    with pytest.raises(ValueError, match=message):
        MLSFormat.parse(name)


def test_constructor_errors():
    with pytest.raises(ValueError, match=r"exp_bits must be in \[0, 5\], got -1"):
        MLSFormat(-1, 2, 0)
    with pytest.raises(TypeError, match="man_bits must be an int, not 1.5"):
        MLSFormat(2, 1.5, 0)
    with pytest.raises(TypeError, match="must be an int, not True"):
        MLSFormat(True, 1, 0)
    with pytest.raises(TypeError, match="format name must be a str"):
        MLSFormat.parse(3)


@pytest.mark.parametrize("fmt", [f for f in ALL_FORMATS if f.exp_bits >= 1], ids=str)
def test_elem_max_matches_design_formula(fmt):
    expected = (2 - Fraction(1, 2**fmt.man_bits)) * Fraction(2) ** (2**fmt.exp_bits - 1 - fmt.bias)
    assert Fraction(fmt.elem_max) == expected
    assert fmt.bias == 2 ** (fmt.exp_bits - 1) - 1


def test_fixed_point_e0_format():
    fmt = MLSFormat.parse("e0m3g2")
    assert fmt.bias == 0 and fmt.sig_bits == 3
    assert fmt.grid().tolist() == [m / 4 for m in range(8)]
    assert fmt.elem_max == 1.75


@pytest.mark.parametrize("fmt", SMALL_FORMATS, ids=str)
def test_grid_is_every_positive_code_ascending(fmt):
    grid = fmt.grid().tolist()
    assert len(grid) == fmt.code_count // 2
    assert grid == sorted(grid) and len(set(grid)) == len(grid)
    assert grid[0] == 0 and grid[-1] == fmt.elem_max
    assert grid[1] == fmt.elem_min_subnormal


@pytest.mark.parametrize("fmt", SMALL_FORMATS, ids=str)
def test_int_value_is_value_in_lsb_units(fmt):
    """int(s, e, m, g) * 2**-L == elem * 2**-g for every code and every g (docs/numerics.md §3)."""
    for sign in (0, 1):
        for exp in range(fmt.max_exp_field + 1):
            for man in range(1 << fmt.man_bits):
                for g in range(fmt.max_group_exp + 1):
                    value = fmt.decode_fraction(sign, exp, man) * Fraction(2) ** -g
                    assert fmt.int_value(sign, exp, man, g) * Fraction(2) ** -fmt.lsb_exponent == value
                    assert abs(fmt.int_value(sign, exp, man, g)) <= fmt.max_int


@pytest.mark.parametrize("fmt", [f for f in ALL_FORMATS if f.man_bits >= 1 and f.exp_bits >= 1], ids=str)
@pytest.mark.parametrize("log2k", [0, 7, 17, 20])
def test_acc_bits_closed_form(fmt, log2k):
    expected = 1 + 2 * (fmt.man_bits + 1) + 2 * (2**fmt.exp_bits - 2) + 2 * (2**fmt.group_bits - 1) + log2k
    assert fmt.acc_bits_exact(2**log2k) == expected


@pytest.mark.parametrize("fmt", SMALL_FORMATS, ids=str)
@pytest.mark.parametrize("k", [1, 3, 1000, 131072])
def test_acc_bits_exact_is_tight(fmt, k):
    """K products of the largest magnitude fit in acc_bits_exact(K) bits and not in one fewer."""
    bits = fmt.acc_bits_exact(k)
    extreme = k * fmt.max_int**2
    assert -(2 ** (bits - 1)) <= -extreme and extreme <= 2 ** (bits - 1) - 1
    assert extreme > 2 ** (bits - 2) - 1
    assert fmt.max_k_for_acc_bits(bits) >= k > fmt.max_k_for_acc_bits(bits - 1)


def test_acc_bits_errors():
    fmt = MLSFormat.parse("e2m1g3")
    with pytest.raises(ValueError, match="reduction length k must be at least 1, got 0"):
        fmt.acc_bits_exact(0)
    with pytest.raises(TypeError, match="reduction length k must be an int"):
        fmt.acc_bits_exact(2.0)


def test_mixed_format_accumulator():
    a, b = MLSFormat.parse("e2m1g3"), MLSFormat.parse("e3m3g3")
    assert a.acc_bits_exact(64, b) == 1 + (64 * a.max_int * b.max_int).bit_length()
    assert a.acc_bits_exact(64, b) == b.acc_bits_exact(64, a)


def test_decode_field_errors():
    fmt = MLSFormat.parse("e2m1g3")
    with pytest.raises(ValueError, match=r"exp must be in \[0, 3\], got 4"):
        fmt.decode_fraction(0, 4, 0)
    with pytest.raises(ValueError, match=r"group_exp must be in \[0, 7\], got 8"):
        fmt.int_value(0, 1, 0, 8)


# -- product and shift widths (the scalar PE and the dot-product PE read these) -----------------

def _operand_extremes(fmt):
    """By enumeration of every code and g: (largest sig, largest element shift, largest group shift,
    largest |int|), from the §3 definition ``int = sig << (max(e,1) - 1 + 2**G - 1 - g)``."""
    sigs, elem_shifts, group_shifts, ints = [], [], [], []
    for exp in range(fmt.max_exp_field + 1):
        for man in range(1 << fmt.man_bits):
            sig = (man + (1 << fmt.man_bits)) if (exp and fmt.exp_bits) else man
            sigs.append(sig)
            elem_shifts.append(max(exp, 1) - 1)
            for g in range(fmt.max_group_exp + 1):
                group_shifts.append(2**fmt.group_bits - 1 - g)
                ints.append(abs(fmt.int_value(0, exp, man, g)))
    return max(sigs), max(elem_shifts), max(group_shifts), max(ints)


def _signed_width(magnitude):
    """Smallest two's-complement width holding +-magnitude, by search."""
    bits = 1
    while not (-(2 ** (bits - 1)) <= -magnitude and magnitude <= 2 ** (bits - 1) - 1):
        bits += 1
    return bits


PAIRS = [(a, b) for a in SMALL_FORMATS[::7] for b in SMALL_FORMATS[::11]]


@pytest.mark.parametrize("fmt", SMALL_FORMATS, ids=str)
def test_operand_widths_by_enumeration(fmt):
    max_sig, elem_shift, group_shift, max_int = _operand_extremes(fmt)
    assert fmt.max_sig == max_sig and max_sig < 2**fmt.sig_bits
    assert fmt.elem_shift_max == elem_shift == (2**fmt.exp_bits - 2 if fmt.exp_bits >= 1 else 0)
    assert fmt.max_shift == elem_shift + group_shift
    assert fmt.max_int == max_int


@pytest.mark.parametrize("a, w", PAIRS, ids=lambda f: str(f))
def test_pair_widths_by_enumeration(a, w):
    sig_a, es_a, gs_a, int_a = _operand_extremes(a)
    sig_w, es_w, gs_w, int_w = _operand_extremes(w)
    assert sig_a * sig_w < 2 ** a.sig_product_bits(w) and a.sig_product_bits(w) == a.sig_bits + w.sig_bits
    assert a.elem_product_shift_max(w) == es_a + es_w
    assert a.group_shift_max(w) == gs_a + gs_w
    assert a.product_shift_max(w) == es_a + es_w + gs_a + gs_w
    shift_bits = a.product_shift_bits(w)  # the smallest unsigned width holding the largest shift
    assert a.product_shift_max(w) < 2**shift_bits and (shift_bits == 0 or a.product_shift_max(w) >= 2 ** (shift_bits - 1))
    assert a.shifted_product_bits(w) == a.sig_product_bits(w) + a.product_shift_max(w)
    assert (sig_a * sig_w) << (es_a + es_w + gs_a + gs_w) < 2 ** a.shifted_product_bits(w)
    assert a.product_bits(w) == _signed_width(int_a * int_w) == a.acc_bits_exact(1, w)
    lane = (sig_a * sig_w) << (es_a + es_w)
    assert a.elem_product_bits(w) == _signed_width(lane)
    for lanes in (1, 2, 3, 8, 16):
        assert a.beat_sum_bits(lanes, w) == _signed_width(lanes * lane)
    # a beat's sum shifted by the largest group shift is the exact §3 product width
    assert a.elem_product_bits(w) + a.group_shift_max(w) == a.product_bits(w)
    # the pair is symmetric
    assert (a.product_bits(w), a.beat_sum_bits(4, w), a.product_shift_bits(w)) == (
        w.product_bits(a), w.beat_sum_bits(4, a), w.product_shift_bits(a))


def test_pair_widths_default_to_the_same_format():
    fmt = MLSFormat.parse("e2m1g3")
    assert (fmt.sig_product_bits(), fmt.product_shift_max(), fmt.product_shift_bits(),
            fmt.shifted_product_bits(), fmt.product_bits(), fmt.elem_product_bits(), fmt.group_shift_max()) == (
        4, 2 * (2 + 7), 5, 4 + 18, 1 + (9 * 2**18).bit_length(), 1 + (9 * 2**4).bit_length(), 14)
    assert MLSFormat.parse("e1m2g0").product_shift_bits() == 0  # no shift at all: no shift bits


def test_pair_width_errors():
    fmt = MLSFormat.parse("e2m1g3")
    with pytest.raises(TypeError, match="other must be an MLSFormat, not 'e2m1g3'"):
        fmt.product_bits("e2m1g3")
    with pytest.raises(ValueError, match="lanes must be at least 1, got 0"):
        fmt.beat_sum_bits(0)
    with pytest.raises(TypeError, match="lanes must be an int, not 2.0"):
        fmt.beat_sum_bits(2.0)


def test_default_max_k():
    from model.formats import DEFAULT_MAX_K

    assert DEFAULT_MAX_K == 2**20
