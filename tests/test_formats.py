"""MLSFormat: naming, derived quantities and their edges (DESIGN §1, §3)."""

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
    """int(s, e, m, g) * 2**-L == elem * 2**-g for every code and every g (DESIGN §3)."""
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
