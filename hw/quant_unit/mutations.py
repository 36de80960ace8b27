"""Mutation check for the quantization unit's RTL: each mutation must make the cocotb tests fail.

``python -m hw.quant_unit.mutations [--list] [NAME ...]`` edits one RTL file in place, runs the
targeted testbenches (the e2m1g3 configurations of tb/test_quant_parts.py and
tb/test_quant_unit.py), restores the file, and prints whether the mutant was killed. Exit status
is non-zero if a mutant survived. It takes about 30 s per mutant under Icarus.
"""

from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent.parent

# name: (file, original text, mutated text, what it breaks)
MUTATIONS = {
    "tie_away": ("element_round.py", "n.eq(trunc + (half & (rest | odd)))", "n.eq(trunc + half)",
                 "nearest rounding: ties away from zero instead of to even"),
    "g_clamp": ("group_exp.py", "with m.Elif(diff > fmt.max_group_exp):\n            m.d.comb += self.g.eq(fmt.max_group_exp)",
                "with m.Elif(diff > fmt.max_group_exp - 1):\n            m.d.comb += self.g.eq(fmt.max_group_exp - 1)",
                "group exponent clamps at 2**G - 2 instead of 2**G - 1"),
    "zero_group_g": ("group_exp.py", "with m.If(exp == 0):\n            m.d.comb += self.g.eq(fmt.max_group_exp)",
                     "with m.If(exp == 0):\n            m.d.comb += self.g.eq(0)",
                     "an all-zero group gets g = 0 instead of the clamp"),
    "no_ftz": ("fp32_mul.py", "with m.Elif(exp >= 1):", "with m.Elif(exp >= 0):",
               "sub-normal products are not flushed (exponent field 0 passed through)"),
    "ftz_edge": ("fp32_mul.py", "with m.Elif((exp == 0) & (sig == 0xFF_FFFF)):", "with m.Elif(0):",
                 "products that gradual underflow rounds up to 2**-126 are flushed"),
    "no_daz_amax": ("amax.py", "Mux((exp == 0) | (exp == 0xFF), 0, x[0:31])", "Mux(exp == 0xFF, 0, x[0:31])",
                    "amax pass counts FP32 subnormals (no DAZ)"),
    "lfsr_tap": ("lfsr.py", "for tap in LFSR_TAPS[1:]:", "for tap in LFSR_TAPS[1:-1]:",
                 "LFSR feedback drops the x^1 tap"),
    "lfsr_free_run": ("convert.py", "lfsr.advance.eq(r_load),", "lfsr.advance.eq(1),",
                      "LFSR advances every cycle instead of once per output word"),
    "sr_no_random": ("element_round.py", "n.eq((ext + self.r) >> R)", "n.eq(ext >> R)",
                     "stochastic rounding ignores the random bits (truncates)"),
    "drop_on_stall": ("convert.py", "with m.Elif(self.o.ready):\n            m.d.sync += self.o.valid.eq(0)",
                      "with m.Else():\n            m.d.sync += self.o.valid.eq(0)",
                      "an output word is dropped when o is not ready"),
    "no_saturate": ("element_round.py", "m.d.comb += mag.eq(max_code)  # saturate", "m.d.comb += mag.eq(code)  # saturate",
                    "codes above elem_max wrap instead of saturating"),
}

TESTS = ["tb/test_quant_parts.py", "tb/test_quant_unit.py", "-k", "e2m1g3", "-x", "-q", "-p", "no:warnings"]


def run(name: str) -> bool:
    """True if the mutant was killed (the tests failed)."""
    file, old, new, _ = MUTATIONS[name]
    path = HERE / file
    original = path.read_text()
    if original.count(old) != 1:
        raise SystemExit(f"mutation {name}: the text to mutate occurs {original.count(old)} times in {file}")
    try:
        path.write_text(original.replace(old, new))
        result = subprocess.run([sys.executable, "-m", "pytest", *TESTS], cwd=ROOT, capture_output=True, text=True)
    finally:
        path.write_text(original)
    return result.returncode != 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="mutations to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the mutations and exit")
    args = parser.parse_args(argv)
    if args.list:
        for name, (file, _, _, what) in MUTATIONS.items():
            print(f"{name:15s} {file:18s} {what}")
        return 0
    unknown = [n for n in args.names if n not in MUTATIONS]
    if unknown:
        parser.error(f"unknown mutation(s) {', '.join(unknown)}; see --list")
    survivors = []
    for name in args.names or list(MUTATIONS):
        killed = run(name)
        print(f"{name:15s} {'killed' if killed else 'SURVIVED'}  ({MUTATIONS[name][3]})", flush=True)
        if not killed:
            survivors.append(name)
    return 1 if survivors else 0


if __name__ == "__main__":
    sys.exit(main())
