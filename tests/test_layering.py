"""Imports run one way: model <- hw <- sim. tb/ and tests/ may import anything; nothing imports them.

Every import statement of every module is read with ``ast``, including the lazy ones inside
functions and ``importlib.import_module("...")`` / ``__import__("...")`` calls with a constant
name, and relative imports are resolved against the module's package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# package -> the top-level packages of this repository it must not import
FORBIDDEN = {
    "model": {"hw", "sim", "tb", "tests"},
    "hw": {"sim", "tb", "tests"},
    "sim": {"tb", "tests"},
}


def imported_modules(path: Path, root: Path = ROOT) -> list[tuple[int, str]]:
    """(line, absolute dotted module name) of every import in the file at ``path``."""
    package = list(path.relative_to(root).parts[:-1])   # the package the module (or __init__) is in
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if node.level > len(package):
                    raise ValueError(f"{path}:{node.lineno}: relative import beyond the top-level package")
                base = package[:len(package) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
                # `from . import x` may name submodules: count each.
                names = [target] if node.module else [f"{target}.{a.name}" for a in node.names]
                found += [(node.lineno, n) for n in names]
            else:
                found.append((node.lineno, node.module))
        elif isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant) \
                and isinstance(node.args[0].value, str):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else ""
            if name in ("import_module", "__import__"):
                found.append((node.lineno, node.args[0].value))
    return sorted(found, key=lambda item: item[0])


def violations(package: str, root: Path = ROOT) -> list[str]:
    """``file:line: imports name`` for every forbidden import of ``package`` under ``root``."""
    out = []
    for path in sorted((root / package).rglob("*.py")):
        for line, name in imported_modules(path, root):
            if name.split(".")[0] in FORBIDDEN[package]:
                out.append(f"{path.relative_to(root)}:{line}: imports {name}")
    return out


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_imports_run_one_way(package):
    assert (ROOT / package / "__init__.py").exists()
    assert violations(package) == [], f"{package}/ must not import {sorted(FORBIDDEN[package])}"


def test_checker_finds_lazy_relative_and_dynamic_imports(tmp_path):
    pkg = tmp_path / "hw" / "fpga"
    pkg.mkdir(parents=True)
    (tmp_path / "hw" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("from . import top\n")
    (pkg / "x.py").write_text(
        "import numpy\n"
        "from .boards import BOARDS\n"          # hw.fpga.boards: allowed
        "from model.formats import MLSFormat\n"  # allowed
        "def f():\n"
        "    from sim.energy import pe_energy\n"  # lazy
        "    return pe_energy\n"
        "class C:\n"
        "    def g(self):\n"
        "        import tb.harness as h\n"
        "        from .. import synth\n"         # hw.synth: allowed
        "        return importlib.import_module('tests.test_x'), __import__('sim')\n")
    assert violations("hw", tmp_path) == [
        "hw/fpga/x.py:5: imports sim.energy",
        "hw/fpga/x.py:9: imports tb.harness",
        "hw/fpga/x.py:11: imports tests.test_x",
        "hw/fpga/x.py:11: imports sim",
    ]
    assert imported_modules(pkg / "x.py", tmp_path)[1:3] == [(2, "hw.fpga.boards"), (3, "model.formats")]
    assert (10, "hw.synth") in imported_modules(pkg / "x.py", tmp_path)
    assert imported_modules(pkg / "__init__.py", tmp_path) == [(1, "hw.fpga.top")]
    (pkg / "y.py").write_text("from ... import far\n")   # above hw/
    with pytest.raises(ValueError, match="relative import beyond the top-level package"):
        violations("hw", tmp_path)
