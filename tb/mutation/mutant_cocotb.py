"""cocotb driver of a mutation run: the unit's own check routines, once per mutant.

The design holds every mutant behind the ``mutsel`` input (``mutate -ctrl``; 0 = the original).
One cocotb test runs per (mutant, check): it sets ``mutsel`` and awaits the check routine of the
unit's testbench (``tb/*_cocotb.py``; each starts its clock and resets the design). cocotb
cancels the test's clock and other tasks when the test ends, so the next test starts clean.

The outcome of each test goes to a JSON-lines file as soon as it is known:

- ``pass``: the check ran to its end;
- ``killed``: an ``AssertionError`` (a bit or cycle mismatch against ``model/``);
- ``timeout``: the check ran for over ``timeout_factor`` times the simulated time it takes on
  the original (not a kill: no assertion failed). Only a safety net: the checks bound their
  own waits with assertions, so a deadlock is a kill when the check's own limit fires;
- ``error``: any other exception (a harness error, never a kill).

A mutant stops at its first kill. The original runs first and again at the end; both must pass.
"""

from __future__ import annotations

import importlib
import json
import math
import traceback

import cocotb
from cocotb.triggers import with_timeout
from cocotb.utils import get_sim_time

from tb.harness import tb_params

P = tb_params()
M = P["mutation"]
CHECKS = M["checks"]
RESULTS = M["results"]
_killed: set[int] = set()
_original_ns: dict[str, int] = {}

# (index, mutant, check): the original first, then every mutant, then the original again
_PLAN = ([(0, c) for c in CHECKS] + [(m, c) for m in M["mutants"] if m != 0 for c in CHECKS]
         + [(0, c) for c in CHECKS])
_PLAN = [(i, m, c) for i, (m, c) in enumerate(_PLAN)]


def _routine(check: str):
    module, name = check.split(":")
    return getattr(importlib.import_module(f"tb.{module}"), name).func


def _record(**entry) -> None:
    with open(RESULTS, "a") as f:
        f.write(json.dumps(entry) + "\n")


@cocotb.test(name="mutant")
@cocotb.parametrize((("index", "mutant", "check"), _PLAN))
async def run_check(dut, index, mutant, check):
    if mutant in _killed:
        return
    dut.mutsel.value = mutant
    start = get_sim_time("ns")
    coro = _routine(check)(dut)
    try:
        if mutant == 0 or check not in _original_ns:
            await coro
        else:
            budget = max(math.ceil(M["timeout_factor"] * _original_ns[check]), 10_000)
            await with_timeout(coro, budget, "ns")
    except AssertionError as exc:
        _killed.add(mutant)
        _record(index=index, mutant=mutant, check=check, outcome="killed", message=str(exc)[:300])
        return
    except cocotb.triggers.SimTimeoutError:
        _record(index=index, mutant=mutant, check=check, outcome="timeout",
                message=f"no result after {get_sim_time('ns') - start} ns of simulated time")
        return
    except Exception as exc:  # a harness error: recorded, never counted as a kill
        _record(index=index, mutant=mutant, check=check, outcome="error",
                message=f"{type(exc).__name__}: {exc}"[:300] + " | " + traceback.format_exc(limit=3)[-300:])
        return
    if mutant == 0:
        _original_ns[check] = max(_original_ns.get(check, 0), get_sim_time("ns") - start)
    _record(index=index, mutant=mutant, check=check, outcome="pass", message="")
