"""Activity-based energy proxy: simulate a synthesized gate netlist on real training operands.

Beyond-the-paper item: the synthesis flow (:mod:`hw.synth`) leaves a flattened CMOS netlist
(``$_NAND_``, ``$_NOR_``, ``$_NOT_``, ``$_DFF_P_``; yosys JSON). :class:`GateNetlist` simulates
it cycle by cycle, vectorized over independent *lanes* (each lane is one output element of a
GEMM, i.e. one PE's K-long accumulation), and counts, for every net, how often its settled value
changes from one cycle to the next.

Energy proxy per MAC = Σ_nets toggles × (2 × fan-out input pins) / MACs, i.e. the number of
transistor gates charged or discharged (each CMOS gate input is one n- and one p-transistor).

What it includes: data-dependent switching of every net of the PE's logic and flip-flop data
inputs, with the operand statistics of a real convolution (ReLU zeros, small weights).
What it ignores: glitches (zero-delay simulation of settled values), clock-tree and flip-flop
internal clock power, wire capacitance beyond pin count, leakage, the unequal sizes of gates,
and everything outside the PE (SRAM, operand forwarding, quantization). It is a relative measure
between PEs run on the same data, not an absolute energy.

Flip-flop clocking is counted beside it (``clock_gate_toggles_per_mac``), since leaving it out
flatters the PEs whose logic is small next to their registers: every flip-flop's clock input
switches twice per cycle whatever the data, and :data:`CLOCK_GATES_PER_FF` transistor gates of a
flip-flop hang on the clock (assumption: a transmission-gate master-slave D flip-flop, yosys's
16-transistor ``$_DFF_P_``, has 4 clocked transmission gates = 8 clocked transistor gates; no
clock gating, no clock-tree wires). Per MAC that is ``flip-flops x 2 x 8 x busy cycles / MACs``,
the busy cycles being one per beat (padding lanes of a partly filled beat included).

The dot-product PEs (``hw.pe.MLSDotPE``, ``hw.baseline.FP8DotPE``, ``INT8DotPE``) run on the same
conv operands packed into beats: the MLS beats by ``model.beats.pack_beats`` (chunks split where
a group changes; padding lanes carry zeros), the FP8/INT8 beats as ``lanes`` consecutive k.

The simulation is checked: every lane's final accumulator must equal the golden model
(``model.baseline_arith``, ``model.arith.beat_accumulate`` or the caller's reference), or
:func:`run_activity` raises.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

__all__ = ["GateNetlist", "ActivityResult", "run_activity", "real_operands", "baseline_drive", "activity_for", "mls_drive",
           "dot_drive", "ACTIVITY_K", "ACTIVITY_LANES", "CLOCK_GATES_PER_FF"]

#: Transistor gates on a flip-flop's clock (both edges switch them): see the module docstring.
CLOCK_GATES_PER_FF = 8

_COMB = {
    "$_NOT_": ("A",), "$_BUF_": ("A",), "$_NAND_": ("A", "B"), "$_NOR_": ("A", "B"),
    "$_AND_": ("A", "B"), "$_OR_": ("A", "B"), "$_XOR_": ("A", "B"), "$_XNOR_": ("A", "B"),
    "$_ANDNOT_": ("A", "B"), "$_ORNOT_": ("A", "B"), "$_MUX_": ("A", "B", "S"),
}
_IGNORED = {"$scopeinfo"}


def _bit(b) -> int:
    if isinstance(b, int):
        return b
    return 1 if b == "1" else 0   # "0", "x", "z" -> constant 0


def _eval(kind: str, v):
    if kind == "$_NOT_":
        return ~v[0]
    if kind == "$_BUF_":
        return v[0]
    if kind == "$_NAND_":
        return ~(v[0] & v[1])
    if kind == "$_NOR_":
        return ~(v[0] | v[1])
    if kind == "$_AND_":
        return v[0] & v[1]
    if kind == "$_OR_":
        return v[0] | v[1]
    if kind == "$_XOR_":
        return v[0] ^ v[1]
    if kind == "$_XNOR_":
        return ~(v[0] ^ v[1])
    if kind == "$_ANDNOT_":
        return v[0] & ~v[1]
    if kind == "$_ORNOT_":
        return v[0] | ~v[1]
    return np.where(v[2], v[1], v[0])  # $_MUX_: S ? B : A


class GateNetlist:
    """A flattened yosys JSON netlist, levelized for vectorized zero-delay simulation."""

    def __init__(self, path: str, top: str | None = None):
        data = json.loads(open(path).read())
        mods = data["modules"]
        if top is None:
            if len(mods) != 1:
                raise ValueError(f"netlist has {len(mods)} modules; name the top ({sorted(mods)})")
            top = next(iter(mods))
        mod = mods[top]
        self.inputs = {n: [_bit(b) for b in p["bits"]] for n, p in mod["ports"].items() if p["direction"] == "input"}
        self.outputs = {n: [_bit(b) for b in p["bits"]] for n, p in mod["ports"].items() if p["direction"] == "output"}
        comb, dffs = [], []
        for name, cell in mod["cells"].items():
            t = cell["type"]
            conn = {k: [_bit(b) for b in v] for k, v in cell["connections"].items()}
            if t in _IGNORED:
                continue
            if t == "$_DFF_P_":
                dffs.append((conn["D"][0], conn["Q"][0]))
            elif t in _COMB:
                comb.append((t, tuple(conn[p][0] for p in _COMB[t]), conn["Y"][0]))
            else:
                raise ValueError(f"unsupported cell type {t!r} in {path} (run dfflegalize and abc first)")
        n = 2 + max([max(b) for b in list(self.inputs.values()) + list(self.outputs.values()) if b] +
                    [max(max(i), y) for _, i, y in comb] + [max(d, q) for d, q in dffs] + [1])
        self.n_nets = n
        self.dff_d = np.array([d for d, _ in dffs], dtype=np.int64)
        self.dff_q = np.array([q for _, q in dffs], dtype=np.int64)
        # Fan-out input pins per net (combinational inputs and flip-flop D pins; clocks excluded).
        fanout = np.zeros(n, dtype=np.int64)
        for _, ins, _ in comb:
            for i in ins:
                fanout[i] += 1
        for d, _ in dffs:
            fanout[d] += 1
        self.fanout = fanout
        self.n_cells = len(comb) + len(dffs)
        # Levelize: a cell is ready when all its inputs are driven.
        ready = np.zeros(n, dtype=bool)
        ready[[0, 1]] = True
        for bits in self.inputs.values():
            ready[bits] = True
        ready[self.dff_q] = True
        readers = defaultdict(list)
        missing = []
        for idx, (_, ins, _) in enumerate(comb):
            missing.append(sum(1 for i in set(ins) if not ready[i]))
            for i in set(ins):
                if not ready[i]:
                    readers[i].append(idx)
        frontier = [i for i, m in enumerate(missing) if m == 0]
        levels = []
        while frontier:
            levels.append(frontier)
            nxt = []
            for idx in frontier:
                y = comb[idx][2]
                for r in readers.pop(y, []):
                    missing[r] -= 1
                    if missing[r] == 0:
                        nxt.append(r)
            frontier = nxt
        if sum(len(lv) for lv in levels) != len(comb):
            raise ValueError(f"{path}: combinational loop or undriven net ({len(comb) - sum(map(len, levels))} cells unreached)")
        self._levels = []
        for lv in levels:
            groups = defaultdict(lambda: ([], []))
            for idx in lv:
                t, ins, y = comb[idx]
                groups[t][0].append(ins)
                groups[t][1].append(y)
            self._levels.append([(t, np.array(i, dtype=np.int64).T, np.array(y, dtype=np.int64)) for t, (i, y) in groups.items()])

    def run(self, drive: dict, cycles: int, lanes: int):
        """Simulate ``cycles`` cycles. ``drive[name]`` is an int array [cycles, lanes] (or a scalar)
        for each input port except the clock. Returns (outputs, toggles): outputs[name] is an
        object array [cycles, lanes] of the port's value *after* each cycle's clock edge, toggles
        the per-net count of settled-value changes between consecutive cycles."""
        v = np.zeros((self.n_nets, lanes), dtype=bool)
        v[1] = True
        state = np.zeros((len(self.dff_q), lanes), dtype=bool)
        toggles = np.zeros(self.n_nets, dtype=np.int64)
        prev = None
        outs = {name: np.zeros((cycles, lanes), dtype=object) for name in self.outputs}
        plans = {}
        for name, bits in self.inputs.items():
            if name == "clk":
                continue
            val = drive.get(name, 0)
            arr = np.broadcast_to(np.asarray(val, dtype=object), (cycles, lanes))
            plans[name] = (np.array(bits, dtype=np.int64), arr)
        for t in range(cycles):
            for name, (bits, arr) in plans.items():
                col = np.array([int(x) for x in arr[t]], dtype=object)
                for k, b in enumerate(bits):
                    v[b] = ((col >> k) & 1).astype(bool)
            v[self.dff_q] = state
            for level in self._levels:
                for kind, ins, ys in level:
                    v[ys] = _eval(kind, [v[i] for i in ins])
            if prev is not None:
                toggles += (v != prev).sum(axis=1)
            prev = v.copy()
            state = v[self.dff_d].copy()
            # Outputs after the edge: re-evaluate only what the ports need (they are DFF-driven
            # or combinational of inputs; read them at the next cycle instead when combinational).
            v_after = v.copy()
            v_after[self.dff_q] = state
            for name, bits in self.outputs.items():
                word = np.zeros(lanes, dtype=object)
                for k, b in enumerate(bits):
                    word = word | (v_after[b].astype(object) * (1 << k))
                outs[name][t] = word
        return outs, toggles


@dataclass(frozen=True)
class ActivityResult:
    design: str
    macs: int
    lanes: int
    k: int
    gate_toggles_per_mac: float      # transistor gates switched per MAC (2 x fan-out pins)
    net_toggles_per_mac: float
    cells: int
    flip_flops: int = 0
    beats: int = 0                   # busy cycles of one lane's accumulation (one per beat)

    @property
    def clock_gate_toggles_per_mac(self) -> float:
        """Flip-flop clocking per MAC: flip-flops x 2 edges x ``CLOCK_GATES_PER_FF`` per busy cycle."""
        return self.flip_flops * 2 * CLOCK_GATES_PER_FF * self.beats * self.lanes / self.macs

    @property
    def total_gate_toggles_per_mac(self) -> float:
        """Data switching plus flip-flop clocking."""
        return self.gate_toggles_per_mac + self.clock_gate_toggles_per_mac


def run_activity(design: str, netlist: str, drive: dict, k: int, lanes: int, expect, *,
                 read_port: str = "result", latency: int = 2, top: str | None = None,
                 macs_per_lane: int | None = None) -> ActivityResult:
    """Run one PE netlist over ``lanes`` accumulations of ``k`` beats and check the results.

    ``drive`` maps input ports to int arrays [k, lanes] (or scalars); ``latency`` idle cycles
    follow, with the operands held and every other port 0 (``valid`` = 0). ``read_port`` is read
    after the edge ``latency - 1`` cycles past the last beat and must equal ``expect`` (mod 2^width).
    ``macs_per_lane``: the useful MACs of one lane's accumulation (default ``k``, one per beat;
    a dot-product PE's K, padding lanes excluded).
    """
    net = GateNetlist(netlist, top)
    cycles = k + latency
    full = {}
    for name, arr in drive.items():
        arr = np.asarray(arr, dtype=object)
        if arr.ndim == 2:
            if arr.shape != (k, lanes):
                raise ValueError(f"drive[{name!r}] has shape {arr.shape}, expected {(k, lanes)}")
            hold = name in ("a", "b", "a_in", "b_in")
            tail = np.repeat(arr[-1:], latency, axis=0) if hold else np.zeros((latency, lanes), dtype=object)
            arr = np.concatenate([arr, tail], axis=0)
        full[name] = arr
    outs, toggles = net.run(full, cycles, lanes)
    got = outs[read_port][k - 1 + latency - 1]
    width = len(net.outputs[read_port])
    want = np.array([int(x) % (1 << width) for x in np.asarray(expect).ravel()], dtype=object)
    if not np.array_equal(got.astype(object), want):
        bad = int(np.nonzero(got != want)[0][0])
        raise AssertionError(f"{design}: gate-level netlist disagrees with the golden model in lane {bad}: "
                             f"{int(got[bad]):#x} != {int(want[bad]):#x}")
    macs = (k if macs_per_lane is None else macs_per_lane) * lanes
    return ActivityResult(design, macs, lanes, k, float((toggles * 2 * net.fanout).sum()) / macs,
                          float(toggles.sum()) / macs, net.n_cells, len(net.dff_q), k)


# -- real training operands ------------------------------------------------------------------

def conv_tensors(source: str = "real") -> dict:
    """The conv layer's activation and weight: ``"real"`` (captured from training) or
    ``"uniform"`` (i.i.d. uniform in [-1, 1], same shapes; the contrast case)."""
    from model.capture import load_tensors

    t = load_tensors()
    if source == "real":
        return t
    if source == "uniform":
        rng = np.random.default_rng(12345)
        return {k: rng.uniform(-1, 1, np.shape(v)).astype(np.float32) for k, v in t.items()}
    raise ValueError(f"source must be 'real' or 'uniform', got {source!r}")


def _im2col(x, kernel: int):
    """[B, C, H, W] -> [B*H*W, C*kernel*kernel]: one row per output pixel of a same-padded,
    stride-1 convolution (the A operand of its forward GEMM)."""
    import torch.nn.functional as F

    cols = F.unfold(x, kernel_size=kernel, padding=kernel // 2)   # [B, K, P]
    return cols.transpose(1, 2).reshape(-1, cols.shape[1])


def real_operands(k: int = 288, lanes: int = 64, seed: int = 0, source: str = "real") -> tuple[np.ndarray, np.ndarray]:
    """FP32 operand streams [k, lanes] of the forward GEMM of a real convolution.

    From ``sim/data/digits_tensors.npz`` (``model.capture``: layer ``convs.1`` of the digits CNN,
    trained in FP32): A = im2col of the activation (rows: output pixels, K = Cin*3*3 = 288),
    W = the weight (columns: output channels). Each lane is one randomly chosen output element
    (pixel, channel); its stream is A[pixel, :k] and W[:k, channel].
    """
    import torch

    t = conv_tensors(source)
    act = torch.as_tensor(t["activation"], dtype=torch.float32)
    w = torch.as_tensor(t["weight"], dtype=torch.float32)
    a_rows = _im2col(act, w.shape[-1]).numpy()                                 # [B*P, K]
    w_cols = w.reshape(w.shape[0], -1).T.numpy()                               # [K, Cout]
    if not 1 <= k <= a_rows.shape[1]:
        raise ValueError(f"k must be in [1, {a_rows.shape[1]}], got {k}")
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, a_rows.shape[0], lanes)
    chans = rng.integers(0, w_cols.shape[1], lanes)
    return np.ascontiguousarray(a_rows[rows, :k].T), np.ascontiguousarray(w_cols[:k, chans])


def _fp8_codes(x: np.ndarray, name: str) -> np.ndarray:
    import torch

    from model.baseline_arith import float_format

    fmt = float_format(name)
    amax = float(np.abs(x).max()) or 1.0
    dtype = torch.float8_e4m3fn if name == "e4m3" else torch.float8_e5m2
    y = torch.as_tensor(x * np.float32(fmt.max_finite / amax)).to(dtype)   # per-tensor scale, RNE
    return y.view(torch.uint8).numpy().astype(np.int64)


def _int8(x: np.ndarray) -> np.ndarray:
    amax = float(np.abs(x).max()) or 1.0
    return np.clip(np.rint(x * (127.0 / amax)), -127, 127).astype(np.int64)


def baseline_drive(pe: str, a: np.ndarray, w: np.ndarray):
    """(drive dict, expected final accumulators) of a baseline PE on FP32 operand streams."""
    from model import baseline_arith as ba

    k, lanes = a.shape
    ctl = np.ones((k, lanes), dtype=np.int64)          # valid | first << 1 | last << 2
    ctl[0] |= 2
    ctl[-1] |= 4
    if pe == "fp32":
        A, W = ba.f32_to_bits(a).astype(np.int64), ba.f32_to_bits(w).astype(np.int64)
        exp = [ba.fp32_accumulate(A[:, i], W[:, i]) for i in range(lanes)]
    elif pe.startswith("fp8"):
        fa = pe.split("-")[1] if "-" in pe else "e4m3"
        A, W = _fp8_codes(a, fa), _fp8_codes(w, fa)
        exp = [ba.fp8_accumulate(A[:, i], W[:, i], fa, fa) for i in range(lanes)]
    elif pe == "int8":
        A, W = _int8(a), _int8(w)
        exp = [ba.int8_accumulate(A[:, i], W[:, i]) for i in range(lanes)]
        A, W = A & 0xFF, W & 0xFF
    else:
        raise ValueError(f"unknown baseline PE {pe!r}")
    return {"a_in": A, "b_in": W, "ctl_in": ctl}, np.array(exp, dtype=object)


def mls_drive(fmt, acc_bits: int, k: int, lanes: int, seed: int = 0, source: str = "real"):
    """(drive dict, expected results) of the MLS PE on the same real conv operands: activation
    and weight quantized with ``model.quantize`` (channel grouping, nearest), then im2col'd."""
    import torch

    from hw.layout_pack import pack_columns
    from hw.pe.layout import operand_layout
    from model.formats import MLSFormat
    from model.quantize import quantize

    fmt = MLSFormat.parse(fmt)
    t = conv_tensors(source)
    act = torch.as_tensor(t["activation"], dtype=torch.float32)
    w = torch.as_tensor(t["weight"], dtype=torch.float32)
    lay = operand_layout(fmt)
    paths = {"man": "elem.man", "exp": "elem.exp", "sign": "elem.sign", "g": "g"}   # fields of lay

    def fields(q, kernel=None):
        parts = {"man": q.man, "exp": q.exp, "sign": q.sign, "g": q.group_exp_per_element(), "int": q.to_int()}
        out = {}
        for name, v in parts.items():
            v = torch.as_tensor(v).to(torch.float64)
            out[name] = (_im2col(v, kernel) if kernel else v.reshape(v.shape[0], -1).T).numpy().astype(np.int64)
        return out

    qa = fields(quantize(act, fmt), kernel=w.shape[-1])                 # [B*P, K]
    qw = fields(quantize(w, fmt))                                        # [K, Cout]
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, qa["man"].shape[0], lanes)
    chans = rng.integers(0, qw["man"].shape[1], lanes)

    def pack(f, sel):
        return pack_columns(lay, {path: sel(f[name]) for name, path in paths.items()})

    A = pack(qa, lambda v: v[rows, :k].T)
    W = pack(qw, lambda v: v[:k, chans])
    prod = qa["int"][rows, :k].T.astype(object) * qw["int"][:k, chans].astype(object)
    # Saturating accumulation, k ascending: the golden model's finite accumulator.
    from model.arith import accumulate

    if acc_bits >= fmt.acc_bits_exact(k):      # exact: no saturation possible
        expect = np.array([int(x) for x in prod.sum(axis=0)], dtype=object)
    else:
        acc, _ = accumulate(torch.as_tensor(prod.T.astype(np.int64)), acc_bits)
        expect = np.array([int(x) for x in acc], dtype=object)
    ctl = np.ones((k, lanes), dtype=np.int64)
    ctl[0] |= 2
    ctl[-1] |= 4
    return {"a_in": A, "b_in": W, "ctl_in": ctl}, expect


def _pack_lanes(values: np.ndarray, width: int) -> np.ndarray:
    """[beats, lanes, L] unsigned lane fields -> [beats, lanes] ints, lane 0 at the LSB end."""
    out = np.zeros(values.shape[:2], dtype=object)
    for lane in range(values.shape[2]):
        out = out | (values[:, :, lane].astype(object) << (lane * width))
    return out


def _baseline_beats(x: np.ndarray, n: int) -> np.ndarray:
    """[k, lanes] -> [beats, lanes, n]: n consecutive k per beat, the last beat zero-padded."""
    k, lanes = x.shape
    beats = -(-k // n)
    padded = np.zeros((beats * n, lanes), dtype=np.int64)
    padded[:k] = x
    return padded.reshape(beats, n, lanes).transpose(0, 2, 1)


def dot_drive(pe: str, fmt: str, n: int, k: int, lanes: int, seed: int = 0, source: str = "real"):
    """(drive dict, expected results, useful MACs per lane) of an ``n``-lane dot-product PE
    (``pe``: ``"mls-dot"``, ``"fp8-dot"``, ``"int8-dot"``) on the conv operands of
    :func:`real_operands` / :func:`mls_drive` (same output elements for the same ``seed``)."""
    from model import baseline_arith as ba

    if pe in ("fp8-dot", "int8-dot"):
        a, w = real_operands(k, lanes, seed, source)
        if pe == "fp8-dot":
            A, W = _baseline_beats(_fp8_codes(a, fmt), n), _baseline_beats(_fp8_codes(w, fmt), n)
            exp = [ba.fp8_dot_accumulate(A[:, i], W[:, i], fmt, fmt) for i in range(lanes)]
        else:
            A, W = _baseline_beats(_int8(a), n), _baseline_beats(_int8(w), n)
            exp = [ba.int8_dot_accumulate(A[:, i], W[:, i]) for i in range(lanes)]
            A, W = A & 0xFF, W & 0xFF
        beats = A.shape[0]
        A, W = _pack_lanes(A, 8), _pack_lanes(W, 8)
    elif pe == "mls-dot":
        import torch

        from hw.layout_pack import layout_fields
        from hw.pe.layout import beat_layout
        from model.arith import beat_accumulate
        from model.beats import forward_gemm, pack_beats
        from model.formats import MLSFormat
        from model.quantize import quantize

        f = MLSFormat.parse(fmt)
        t = conv_tensors(source)
        act = torch.as_tensor(t["activation"], dtype=torch.float32)
        wt = torch.as_tensor(t["weight"], dtype=torch.float32)
        gemm = forward_gemm(quantize(act, f), quantize(wt, f), padding=wt.shape[-1] // 2)
        if not 1 <= k <= gemm.a.k:
            raise ValueError(f"k must be in [1, {gemm.a.k}], got {k}")
        rng = np.random.default_rng(seed)
        rows = torch.as_tensor(rng.integers(0, gemm.a.lines, lanes))
        chans = torch.as_tensor(rng.integers(0, gemm.w.lines, lanes))
        op_a, op_w = gemm.a.select(rows), gemm.w.select(chans)
        if k < gemm.a.k:
            op_a, op_w = (type(op)(op.fmt, op.codes[:, :k], op.group_exp[:, :k], op.group_id[:, :k]) for op in (op_a, op_w))
        stream = pack_beats(op_a, op_w, n)
        acc, _ = beat_accumulate(stream)
        exp = [int(acc[i, i]) for i in range(lanes)]        # lane i: A line i times W line i
        fields = layout_fields(beat_layout(f, n))
        emask, mmask = (1 << f.exp_bits) - 1, (1 << f.man_bits) - 1

        def packed(codes, group):
            codes = codes.numpy().astype(object)             # [beats, lanes, n]
            out = group.numpy().astype(object) << fields["g"][0]
            for lane in range(n):
                c = codes[:, :, lane]
                for name, part in (("man", c & mmask), ("exp", (c >> f.man_bits) & emask),
                                   ("sign", c >> (f.exp_bits + f.man_bits))):
                    if f"elems.{lane}.{name}" in fields:
                        out = out | (part << fields[f"elems.{lane}.{name}"][0])
            return out

        A, W = packed(stream.a_codes, stream.a_group), packed(stream.w_codes, stream.w_group)
        beats = stream.beats
    else:
        raise ValueError(f"unknown dot-product PE {pe!r}")
    ctl = np.ones((beats, lanes), dtype=np.int64)          # valid | first << 1 | last << 2
    ctl[0] |= 2
    ctl[-1] |= 4
    return {"a_in": A, "b_in": W, "ctl_in": ctl}, np.array(exp, dtype=object), k


ACTIVITY_K = 288      # the captured conv's full reduction (Cin * 3 * 3)
ACTIVITY_LANES = 64


def activity_for(cfg, synth_result, k: int = ACTIVITY_K, lanes: int = ACTIVITY_LANES, seed: int = 0,
                 source: str = "real"):
    """Activity of one ``hw.synth.PEConfig`` on the real operands, or None if it has no driver."""
    a, w = real_operands(k, lanes, seed, source)
    if cfg.pe == "fp8":
        if "x" in cfg.fmt:
            return None            # mixed formats: skip (same adder, E5M2 operands would need errors)
        drive, expect = baseline_drive(f"fp8-{cfg.fmt}", a, w)
    elif cfg.pe in ("fp32", "int8"):
        drive, expect = baseline_drive(cfg.pe, a, w)
    elif cfg.pe == "mls":
        drive, expect = mls_drive(cfg.fmt, cfg.acc_bits, k, lanes, seed, source)
    elif cfg.pe in ("mls-dot", "fp8-dot", "int8-dot"):
        from hw.pe.adder_tree import AdderTree

        drive, expect, macs = dot_drive(cfg.pe, cfg.fmt, cfg.lanes, k, lanes, seed, source)
        latency = 2 + AdderTree.latency_for(cfg.lanes, 2)   # the dot PEs' latency, default tree staging
        return run_activity(cfg.design, synth_result.netlist, drive, len(drive["ctl_in"]), lanes, expect,
                            latency=latency, macs_per_lane=macs)
    else:
        return None
    return run_activity(cfg.design, synth_result.netlist, drive, k, lanes, expect)
