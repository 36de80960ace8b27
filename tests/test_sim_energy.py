# amaranth: UnusedElaboratable=no
"""Energy model (sim/energy.py, docs/cost_model.md §3): anchors, sums of parts, monotonicity, bad inputs.

The widths the hand-computed cases start from (§3, §3.1) are those of docs/numerics.md.
"""

import itertools

import pytest

from model import floats
from model.formats import MLSFormat
from sim.cycles import ArrayConfig
from sim.energy import (
    BASELINES,
    COMPUTE_PARTS,
    CONSTANTS,
    SRAM_PARTS,
    Design,
    WorkloadStats,
    PartCounts,
    convert_energy,
    fp_add_energy,
    pe_area,
    pe_counts,
    pe_energy,
    quantize_energy,
    sram_bit_energy,
    workload_energy,
)

HOROWITZ = {c.name: c.value for c in CONSTANTS}


def test_fp32_mac_is_horowitz():
    """The FP32 PE's multiply and add are Horowitz's; the PE adds the `first` select of the
    product or the sum (hw.baseline.systolic_pe), 32 mux bits."""
    parts = pe_energy("fp32")
    assert parts["multiplier"] + parts["exponent"] == pytest.approx(3.7, abs=1e-12)
    assert fp_add_energy(floats.FP32) == pytest.approx(0.9, abs=1e-12)
    assert parts["aligner"] + parts["accumulator"] == pytest.approx(0.9 + 32 * HOROWITZ["C_MUX"], abs=1e-12)
    assert HOROWITZ["H_FP32_MUL"] == 3.7 and HOROWITZ["H_FP32_ADD"] == 0.9


def test_narrow_addend_switches_only_its_bits():
    """An FP32 adder accumulating FP8 products (at most 8 significant bits exact, 4 rounded) is
    charged, in energy, only the bits an accumulation step can switch (docs/cost_model.md §3,
    *Narrow addends*); the rest is idle: built (area) but never switching (no energy)."""
    from sim.energy import _fp_add_counts
    # E = 8, s = 24, p = 8: exponent difference 9, magnitude compare 8 + 8 - 1, sum 8 + 3,
    # rounding increment 8, result exponent and carry 2 * 9
    assert _fp_add_counts(8, 24, 8)[0] == 9 + 15 + 11 + 8 + 18
    # swap 2 (8 + 8); align: the 11 bits (8 + guard, round, sticky) reach 12, 14, 18, 26, 27
    # bits of the 5 stages; normalize 11 x 5; leading-zero count (8 + 4) * 5 / 2; select 3 (8 + 8)
    assert _fp_add_counts(8, 24, 8)[1] == 32 + (12 + 14 + 18 + 26 + 27) + 55 + 30 + 48
    full = _fp_add_counts(8, 24)
    assert full == (9 + 31 + 27 + 24 + 18, 64 + 135 + 135 + 70 + 96, 0, 0)  # the FP32 add law: nothing idle
    for p in (4, 8, 11, 16, 22, 24):
        adds, muxes, idle_adds, idle_muxes = _fp_add_counts(8, 24, p)
        assert (adds + idle_adds, muxes + idle_muxes) == full[:2]  # the whole adder is still built
    exact, rounded = pe_counts("fp8e4m3-fp32acc+exact"), pe_counts("fp8e4m3-fp32acc")
    assert exact["accumulator"] == PartCounts(adds=61, idle_adds=109 - 61)
    # the `first` select passes 1 + 8 + 7 bits of the FP32 word; 16 significand bits stay zero
    assert exact["aligner"] == PartCounts(muxes=262 + 16, idle_muxes=500 - 262 + 16)
    assert rounded["accumulator"].adds == _fp_add_counts(8, 24, 4)[0] and rounded["aligner"].idle_muxes == \
        _fp_add_counts(8, 24, 4)[3] + 20
    assert pe_counts("fp16-fp32acc")["accumulator"].adds == _fp_add_counts(8, 24, 11)[0]
    for name in ("fp32", "int8-int32acc", "mls-e2m1g3", "mls-e2m1g3-l9", "int8-dot9"):  # no narrow sign-magnitude addend
        assert all(c.idle_adds == c.idle_muxes == 0 for c in pe_counts(name, 4096).values()), name
    # the same FP32Adder (and `first` select) as the FP32 PE's: the same area, less energy
    fp32 = pe_counts("fp32")
    for part in ("aligner", "accumulator"):
        assert exact[part].area == fp32[part].area and exact[part].energy < fp32[part].energy
    with pytest.raises(ValueError, match=r"addend significand bits must be in \[1, 24\], got 25"):
        _fp_add_counts(8, 24, 25)


def test_other_anchors():
    fp16 = pe_energy("fp16-fp32acc")
    assert fp16["multiplier"] + fp16["exponent"] == pytest.approx(1.1, abs=1e-12)
    int8 = pe_energy("int8-int32acc")
    assert int8["multiplier"] == pytest.approx(0.2, abs=1e-12)  # a signed 8 x 8 multiply
    assert int8["accumulator"] == pytest.approx(0.1, abs=1e-12)
    assert fp_add_energy(floats.FP16) == pytest.approx(0.4, rel=0.1)  # FP16 add: predicted, not fitted
    # an unsigned cell costs the measured transistor ratio of a signed one
    assert HOROWITZ["C_UMUL"] == HOROWITZ["C_IMUL"] * HOROWITZ["SYN_UMUL8"] / HOROWITZ["SYN_SMUL8"]
    assert sram_bit_energy(8) * 64 == pytest.approx(10.0)
    assert sram_bit_energy(32) * 64 == pytest.approx(20.0)
    assert sram_bit_energy(1024) * 64 == pytest.approx(100.0)


def _stats(**kw):
    base = dict(macs=10**9, cycles=5 * 10**6, pe_count=256, a_reads=3 * 10**7, b_reads=2 * 10**7,
                c_writes=10**6, group_reads=5 * 10**6, quant_nearest=4 * 10**5, quant_stochastic=2 * 10**5,
                k_max=4096, psum_reads=3 * 10**6, psum_writes=3 * 10**6)
    base.update(kw)
    return WorkloadStats(**base)


@pytest.mark.parametrize("design", list(BASELINES) + ["mls-e2m1g3", "mls-e3m2g5-acc30", "fp8e5m2-fp32acc+exact"])
def test_totals_are_sums_of_parts(design):
    st = _stats()
    e = workload_energy(st, design)
    assert e["compute"] == pytest.approx(sum(e[p] for p in COMPUTE_PARTS), rel=1e-15)
    assert e["sram"] == pytest.approx(sum(e[p] for p in SRAM_PARTS), rel=1e-15)
    assert e["total"] == e["compute"] + e["sram"]
    pe = pe_energy(design, st.k_max)
    for part, value in pe.items():
        assert e[part] == pytest.approx(value * st.macs)
    d = Design.parse(design)
    bit = sram_bit_energy(8)
    assert e["sram_a"] == pytest.approx(st.a_reads * d.elem_bits * bit)
    assert e["sram_group"] == pytest.approx(st.group_reads * d.group_bits * bit)
    expected_q = st.quant_nearest * quantize_energy(d) + st.quant_stochastic * quantize_energy(d, stochastic=True)
    assert e["quantize"] == pytest.approx(expected_q)
    assert e["convert"] == pytest.approx(st.c_writes * convert_energy(d, st.k_max))
    acc = {"mls": lambda: d.acc_bits or d.fmt.acc_bits_exact(st.k_max), "int": lambda: 32,
           "float": lambda: d.acc.bits}[d.kind]()
    assert e["sram_psum"] == pytest.approx((st.psum_reads + st.psum_writes) * acc * bit)
    assert e["psum_add"] > 0
    assert workload_energy(_stats(psum_reads=0, psum_writes=0), design)["psum_add"] == 0


def _mls_cost(fmt: MLSFormat, k: int = 4096, acc: int | None = None):
    d = Design(f"mls-{fmt}", "mls", fmt, None, acc)
    return (sum(pe_energy(d, k).values()), quantize_energy(d), quantize_energy(d, stochastic=True),
            convert_energy(d, k), pe_area(d, k))


def test_more_bits_never_cheaper_mls():
    formats = [MLSFormat(e, m, g) for e, m, g in itertools.product(range(6), range(11), range(7)) if e + m]
    cost = {f: _mls_cost(f) for f in formats}
    for f in formats:
        for de, dm, dg in ((1, 0, 0), (0, 1, 0), (0, 0, 1)):
            e, m, g = f.exp_bits + de, f.man_bits + dm, f.group_bits + dg
            if e <= 5 and m <= 10 and g <= 6:
                bigger = MLSFormat(e, m, g)
                for a, b in zip(cost[f], cost[bigger]):
                    assert b >= a - 1e-15, (f, bigger, cost[f], cost[bigger])
    fmt = MLSFormat(2, 1, 3)
    widths = [_mls_cost(fmt, acc=a) for a in range(8, 64)]
    for a, b in zip(widths, widths[1:]):
        assert all(y >= x for x, y in zip(a, b))
    # larger K needs a wider exact accumulator, never a cheaper one
    ks = [_mls_cost(fmt, k=k) for k in (1, 10, 1000, 10**5, 10**7)]
    for a, b in zip(ks, ks[1:]):
        assert all(y >= x for x, y in zip(a, b))


def test_more_bits_never_cheaper_baselines():
    total = lambda d: sum(pe_energy(d).values())  # noqa: E731
    assert total("fp8e5m2-fp16acc") <= total("fp8e4m3-fp16acc") <= total("fp8e4m3-fp32acc") \
        <= total("bf16-fp32acc") <= total("fp16-fp32acc") <= total("fp32")
    assert total("fp8e4m3-fp32acc+exact") <= total("fp8e4m3-fp32acc")
    st = _stats()
    assert workload_energy(st, "fp32")["total"] > workload_energy(st, "fp16-fp32acc")["total"]
    assert sram_bit_energy(8) < sram_bit_energy(16) < sram_bit_energy(32) < sram_bit_energy(512)


def test_design_parse():
    d = Design.parse("mls-e2m1g3-acc24")
    assert (d.kind, str(d.fmt), d.acc_bits, d.elem_bits, d.group_bits) == ("mls", "e2m1g3", 24, 4, 3)
    assert Design.parse("FP8E4M3-fp16acc").acc.name == "fp16"
    assert Design.parse("fp8e4m3-fp32acc+exact").exact_product


def test_designs_use_the_model_float_formats():
    from model import floats

    for name, op, acc in [("fp32", floats.FP32, floats.FP32), ("fp16-fp32acc", floats.FP16, floats.FP32),
                          ("bf16-fp32acc", floats.BF16, floats.FP32), ("fp8e4m3-fp16acc", floats.E4M3, floats.FP16),
                          ("fp8e5m2-fp32acc", floats.E5M2, floats.FP32)]:
        d = Design.parse(name)
        assert d.fmt is op and d.acc is acc and d.elem_bits == op.bits and d.out_bits == acc.bits


@pytest.mark.parametrize("fmt", ["e2m1g3", "e1m2g0", "e0m3g2", "e3m3g3"])
def test_mls_pe_widths_come_from_the_format(fmt):
    """The MLS PE laws by hand from the §3 widths: s x s multiplier, a log shifter whose stages grow
    from the 2s-bit product to the shifted width, the shift-amount adder, the pipeline registers."""
    f = MLSFormat.parse(fmt)
    s, shift_range = f.sig_bits, 2 * f.max_shift
    shift_bits, out = shift_range.bit_length(), 2 * s + shift_range
    stages = sum(min(2 * s + 2 ** (j + 1) - 1, out) for j in range(shift_bits))
    counts = pe_counts(f"mls-{fmt}-acc40")
    assert counts["multiplier"] == PartCounts(cells=s * s)
    assert counts["exponent"] == PartCounts(adds=f.exp_bits + f.group_bits + shift_bits)
    assert counts["aligner"] == PartCounts(muxes=stages + out)
    # the saturating accumulator: a 40-bit adder and the clamp to 40 bits
    assert counts["accumulator"] == PartCounts(adds=40, muxes=40)
    # forwarded A and W and ctl_out (3), the signed aligned product (out + 1), its control (3),
    # done; with a load enable: accumulator, result, sticky and overflow
    assert counts["registers"] == PartCounts(regs=2 * (f.elem_bits + f.group_bits) + 3 + out + 1 + 3 + 1,
                                             enabled_regs=2 * 40 + 2)
    _check_laws(f"mls-{fmt}-acc40")


def _check_laws(design, k_max=1):
    """pe_energy and pe_area are the counts under the energy and the area law."""
    c = HOROWITZ
    counts, energy = pe_counts(design, k_max), pe_beat_energy(design, k_max)
    area = 0.0
    for part, n in counts.items():
        law = (c["C_UMUL"] * n.cells + c["C_IMUL"] * n.signed_cells + c["C_ADD"] * n.adds + c["C_MUX"] * n.muxes
               + c["C_REG"] * (n.regs + n.enabled_regs))
        assert energy[part] == pytest.approx(law if n.pj is None else n.pj, rel=1e-12)
        # idle bits are built (area) but never switch (no energy)
        area += (c["W_CELL"] * n.cells + c["W_SCELL"] * n.signed_cells + n.adds + n.idle_adds
                 + c["W_MUX"] * (n.muxes + n.idle_muxes) + c["W_REG"] * n.regs + c["W_EREG"] * n.enabled_regs)
    assert pe_area(design, k_max) == pytest.approx(area, rel=1e-12)


def test_area_weights_are_the_measured_primitives():
    """Each area weight is a measured primitive's transistors per unit over the adder bit's."""
    c = HOROWITZ
    adder_bit = c["SYN_ADD32"] / 32
    assert c["W_CELL"] == c["SYN_UMUL8"] / 64 / adder_bit and c["W_SCELL"] == c["SYN_SMUL8"] / 64 / adder_bit
    assert c["W_MUX"] == c["SYN_MUX32"] / 32 / adder_bit and c["W_REG"] == c["SYN_REG32"] / 32 / adder_bit
    assert c["W_EREG"] == c["SYN_REGE32"] / 32 / adder_bit
    for name in ("fp32", "fp8e4m3-fp32acc", "fp8e4m3-fp32acc+exact", "int8-int32acc", "mls-e3m3g3"):
        _check_laws(name, 4096)


@pytest.mark.parametrize("name, message", [
    ("mls-e9m1g1", "exp_bits must be in"),
    ("mls-e2m1", "is not one of"),
    ("mls-e2m1g3-acc1", "accumulator width must be in"),
    ("fp8e4m3", "give the accumulator"),
    ("fp32-fp16acc", "fp32 accumulates in fp32"),
    ("posit8", "is not one of"),
])
def test_design_errors(name, message):
    with pytest.raises(ValueError, match=message):
        Design.parse(name)
    with pytest.raises(TypeError, match="must be a str"):
        Design.parse(8)


def test_bad_array_and_sram():
    with pytest.raises(ValueError, match="rows must be in"):
        ArrayConfig(0, 16)
    with pytest.raises(ValueError, match="must look like RxC"):
        ArrayConfig.parse("16by16")
    with pytest.raises(TypeError, match="cols must be an int"):
        ArrayConfig(4, 2.5)
    with pytest.raises(ValueError, match="SRAM size"):
        sram_bit_energy(0)


# -- L-lane dot-product PEs ----------------------------------------------------------------------
from sim.energy import (MAX_LANES, PE_PARTS, adder_tree_bits, pe_area_per_mac,  # noqa: E402
                        pe_beat_energy, ungrouped_gemms)


def test_dot_design_spelling():
    d = Design.parse("mls-e2m1g3-l16")
    assert (d.kind, str(d.fmt), d.lanes, d.acc_bits, d.is_dot, d.lane_count) == ("mls", "e2m1g3", 16, None, True, 16)
    d = Design.parse("MLS-e2m1g3-l9-acc32")
    assert (d.lanes, d.acc_bits, d.name) == (9, 32, "mls-e2m1g3-l9-acc32")
    assert d.with_acc(24).name == "mls-e2m1g3-l9-acc24" and d.with_acc(24).lanes == 9
    assert Design.mls("e2m1g3", 16, 30) == Design.parse("mls-e2m1g3-l16-acc30")
    assert Design.mls("e2m1g3") == Design.parse("mls-e2m1g3") and not Design.parse("mls-e2m1g3").is_dot
    f = Design.parse("fp8e5m2-dot16")
    assert (f.kind, f.fmt.name, f.acc.name, f.lanes, f.elem_bits, f.out_bits) == ("float", "e5m2", "fp32", 16, 8, 32)
    i = Design.parse("int8-dot4")
    assert (i.kind, i.acc_bits, i.lanes) == ("int", 32, 4)
    for name in ("mls-e2m1g3-l0", f"int8-dot{MAX_LANES + 1}", "fp8e4m3-dot0"):
        with pytest.raises(ValueError, match=rf"lanes must be in \[1, {MAX_LANES}\]"):
            Design.parse(name)
    with pytest.raises(ValueError, match="fp8e4m3-dot<LANES>"):
        Design.parse("fp16-dot4")


def test_adder_tree_shape():
    """L - 1 two-input adders for any L; with a constant node width, the registered levels (every
    second and the last) hold exactly their node counts (hw.pe.adder_tree's structure)."""
    for lanes in range(1, 70):
        adders, registers = adder_tree_bits(lanes, lambda n: 2)  # one adder bit per 2-bit node
        assert adders == lanes - 1
        assert registers % 2 == 0
        registers //= 2
        counts, nodes, depth = [], lanes, (lanes - 1).bit_length()
        for level in range(1, depth + 1):
            nodes = (nodes + 1) // 2
            if level % 2 == 0 or level == depth:
                counts.append(nodes)
        assert registers == sum(counts)
    assert adder_tree_bits(16, lambda n: 40, cap=32) == (15 * 32, (4 + 1) * 32)  # wraps: all 32 bits
    assert adder_tree_bits(16, lambda n: 40) == (15 * 39, (4 + 1) * 40)  # a 40-bit sum of 39-bit operands


def test_mls_dot_pe_by_hand():
    """e2m1g3, L = 4, 40-bit accumulator, from the §3.1 widths by hand: sig 2, element shift <= 4
    (3 bits), lane products 9 bits (3*3 << 4 = 144), tree nodes 10, 10, 11 (one register level
    of 11 bits, latency 1), group shift <= 14 (4 bits) of the 11-bit sum to 25 bits."""
    counts = pe_counts("mls-e2m1g3-l4-acc40")
    assert list(counts) == list(PE_PARTS)
    assert counts["multiplier"] == PartCounts(cells=4 * 2 * 2)
    assert counts["exponent"] == PartCounts(adds=4 * 3 + 4)
    assert counts["aligner"] == PartCounts(muxes=4 * ((5 + 7 + 8) + 9))
    assert counts["tree"] == PartCounts(adds=9 + 9 + 10)  # each node adds operands one bit narrower
    assert counts["group_shift"] == PartCounts(muxes=12 + 14 + 18 + 25)
    assert counts["accumulator"] == PartCounts(adds=40, muxes=40)
    # forwarded: 4 lanes x (A + W elements), both group exponents, ctl_out; the 4 lane products;
    # ctl and both group exponents through 2 stages; done; the 11-bit tree register.
    # Load-enabled: accumulator, result, sticky, overflow.
    assert counts["registers"] == PartCounts(regs=4 * 2 * 4 + 2 * 3 + 3 + 4 * 9 + 2 * (3 + 2 * 3) + 1 + 11,
                                             enabled_regs=2 * 40 + 2)
    _check_laws("mls-e2m1g3-l4-acc40")
    parts = pe_beat_energy("mls-e2m1g3-l4-acc40")
    per_mac = pe_energy("mls-e2m1g3-l4-acc40")
    assert all(per_mac[p] == parts[p] / 4 for p in PE_PARTS)
    half = pe_energy("mls-e2m1g3-l4-acc40", lane_utilization=0.5)
    assert all(half[p] == parts[p] / 2 for p in PE_PARTS)
    assert pe_area_per_mac("mls-e2m1g3-l4-acc40") == pe_area("mls-e2m1g3-l4-acc40") / 4
    with pytest.raises(ValueError, match="lane_utilization"):
        pe_energy("mls-e2m1g3-l4", lane_utilization=0)


def test_same_lane_baselines():
    """INT8 dot at L = 1 is the scalar INT8 PE; the FP8 dot PE aligns in the exact product window
    (E4M3: 448 * 2^9 squared needs 36 bits, E5M2: 64) and adds once per beat; more lanes share the
    per-beat parts, so the MLS and INT8 dot PEs get cheaper per MAC from L = 1 to 16."""
    assert pe_energy("int8-dot1") == pe_energy("int8-int32acc")
    c_mux = HOROWITZ["C_MUX"]
    fp8 = pe_beat_energy("fp8e4m3-dot1")
    from sim.energy import shifter_mux_bits
    assert fp8["aligner"] == c_mux * (shifter_mux_bits(8, 5, 36) + 37)
    e5 = pe_beat_energy("fp8e5m2-dot1")
    assert e5["aligner"] == c_mux * (shifter_mux_bits(6, 6, 64) + 65)
    # the single-rounding add is FP32WideAdder's: its window, a log shifter of the 24-bit
    # accumulator into it, an add, sign-magnitude and leading-zero count over it, a normalize
    # shift, the rounding increment and two 9-bit exponent adders
    from hw.baseline.fp32_wide_add import FP32WideAdder
    from model.baseline_arith import fp8_dot_max_product, fp8_dot_product_lsb
    from sim.energy import fp32_wide_add_counts
    c_add = HOROWITZ["C_ADD"]
    sum_bits = 1 + (9 * fp8_dot_max_product("e4m3", "e4m3")).bit_length()
    window = FP32WideAdder(sum_bits, fp8_dot_product_lsb("e4m3", "e4m3")).window_bits
    stages = (window - 1).bit_length()
    # the GUARD bits below the beat sum's LSB are built but idle in the three window-wide terms
    # and the normalize shifter (the sum is zero there, the accumulator's bits unchanged)
    guard = FP32WideAdder.GUARD
    assert fp32_wide_add_counts(sum_bits) == (3 * (window - guard) + 25 + 18,
                                              shifter_mux_bits(24, stages, window) + (window - guard) * stages + 3 * 32,
                                              3 * guard, guard * stages)
    dot9 = pe_beat_energy("fp8e4m3-dot9")
    adds, muxes, idle_adds, idle_muxes = fp32_wide_add_counts(sum_bits)
    assert dot9["accumulator"] == c_add * adds + c_mux * muxes
    acc = pe_counts("fp8e4m3-dot9")["accumulator"]
    assert (acc.idle_adds, acc.idle_muxes) == (idle_adds, idle_muxes)
    assert dot9["exponent"] == c_add * 5 * 9
    for name in ("fp8e4m3-dot9", "fp8e5m2-dot4", "int8-dot16", "mls-e3m3g3-l32"):
        _check_laws(name, 4096)
    assert pe_counts("int8-dot9")["multiplier"] == PartCounts(signed_cells=9 * 64)  # hw.baseline.int_mul
    for name in ("mls-e2m1g3-l{}", "int8-dot{}", "fp8e4m3-dot{}"):
        one, many = (sum(pe_energy(name.format(n), 4096).values()) for n in (1, 16))
        assert many < one, name
    assert sum(pe_energy("mls-e2m1g3-l16", 131072).values()) < sum(pe_energy("int8-dot16").values())


def test_workload_charges_beats():
    """A dot design pays every beat (padded lanes included); the stats must be counted on an array
    of the design's lane count."""
    st = _stats(lanes=4, lane_slots=4 * 3 * 10**8)  # 3e8 beats for 1e9 MACs: utilization 5/6
    assert st.beats == 3 * 10**8 and st.lane_utilization == 10**9 / (12 * 10**8)
    for name in ("mls-e2m1g3-l4", "fp8e4m3-dot4", "int8-dot4"):
        e = workload_energy(st, name)
        beat = pe_beat_energy(name, st.k_max)
        for part in PE_PARTS:
            assert e[part] == beat[part] * st.beats
    with pytest.raises(ValueError, match="counted on an array of 4-lane PEs"):
        workload_energy(st, "mls-e2m1g3")
    with pytest.raises(ValueError, match="counted on an array of 1-lane PEs"):
        workload_energy(_stats(), "int8-dot4")
    with pytest.raises(ValueError, match="multiple of lanes"):
        _stats(lanes=4, lane_slots=10**9 + 2)


def test_ungrouped_gemms():
    from sim.workloads import network_gemms

    gemms = network_gemms("resnet20")
    flat = ungrouped_gemms(gemms)
    assert [g.k_chunk for g in flat] == [g.k for g in gemms]
    assert [(g.m, g.n, g.k, g.layer, g.pass_) for g in flat] == [(g.m, g.n, g.k, g.layer, g.pass_) for g in gemms]


def test_primitive_constants_are_measured():
    """The SYN_* constants are what `python -m sim.synth_primitives` measures in hw.synth's flow
    (cached under build/synth after the first run)."""
    from sim.synth_primitives import PRIMITIVES, synthesize_primitives

    measured = synthesize_primitives()
    assert {p.constant for p in PRIMITIVES} == {name for name in HOROWITZ if name.startswith("SYN_")}
    for p in PRIMITIVES:
        assert measured[p.constant] == HOROWITZ[p.constant], p


def test_primitive_circuit_errors():
    from sim.synth_primitives import PrimitiveCircuit

    with pytest.raises(ValueError, match="kind must be one of add, mux, reg, rege, smul, umul, got 'div'"):
        PrimitiveCircuit("div", 8)
    with pytest.raises(ValueError, match=r"width must be an int in \[2, 64\], got 1"):
        PrimitiveCircuit("add", 1)


def test_narrow_addend_activity_is_the_lone_adder():
    """The narrow-addend check (`python -m sim.synth_primitives --activity`) runs the FP32Adder
    on accumulations of real conv products: exact E4M3 products switch it less than FP32 ones,
    and the law it is set beside is the 8-bit-addend count over the full FP32 add."""
    from sim.energy import _fp_add_counts
    from sim.synth_primitives import narrow_addend_activity

    c = HOROWITZ
    got = narrow_addend_activity(k=24, lanes=4)
    assert 0 < got["fp8"] < got["fp32"] and got["measured"] == got["fp8"] / got["fp32"]
    (a8, m8, _, _), (a24, m24, _, _) = _fp_add_counts(8, 24, 8), _fp_add_counts(8, 24)
    assert got["law"] == (c["C_ADD"] * a8 + c["C_MUX"] * m8) / (c["C_ADD"] * a24 + c["C_MUX"] * m24)
