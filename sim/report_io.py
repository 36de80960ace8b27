"""The shared plumbing of every report in ``reports/``: Markdown tables, CSV files, plot set-up.

Each report module (:mod:`sim.report` for energy, :mod:`sim.synth_report`, :mod:`sim.fpga_report`,
:mod:`sim.dse`) decides *what* goes into its tables; this module decides *how* a table, a CSV
file and a PNG are written, once, so that regenerating a report gives the same bytes.

- :func:`markdown_table` renders a GitHub Markdown table as a list of lines.
- :func:`csv_text` / :func:`write_csv` render rows (mappings or sequences) as CSV text.
- :func:`read_csv` reads a CSV file into one ``dict`` per row.
- :func:`pyplot` returns ``matplotlib.pyplot`` on the non-interactive Agg backend and
  :func:`save_figure` writes a figure and closes it.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

__all__ = ["markdown_table", "csv_text", "write_csv", "read_csv", "pyplot", "save_figure"]


def markdown_table(header: Sequence[str], rows: Iterable[Sequence], align: str | None = None, *,
                   cell: Callable[[object], str] = str, tight_rule: bool = False) -> list[str]:
    """A Markdown table as lines: header, rule, one line per row.

    ``align`` has one letter per column, ``l`` (left) or ``r`` (right); the default is the first
    column left and the others right. ``cell`` turns each value into its text (default ``str``).
    The rule line is ``| --- | ---: |`` or, with ``tight_rule``, ``|---|---:|`` (both render the
    same; each committed report keeps the spelling it was first written with).
    """
    header = list(header)
    align = align or ("l" + "r" * (len(header) - 1))
    if len(align) != len(header) or set(align) - {"l", "r"}:
        raise ValueError(f"align must be one 'l' or 'r' per column ({len(header)} columns), got {align!r}")
    rule = ["---:" if a == "r" else "---" for a in align]
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(rule) + "|" if tight_rule else "| " + " | ".join(rule) + " |"]
    for row in rows:
        row = list(row)
        if len(row) != len(header):
            raise ValueError(f"table row has {len(row)} cells, the header {len(header)}: {row!r}")
        lines.append("| " + " | ".join(cell(c) for c in row) + " |")
    return lines


def csv_text(rows: Iterable[Mapping | Sequence], fields: Sequence[str] | None = None, *,
             line_end: str = "\n") -> str:
    """CSV text with a header line.

    Rows are mappings (written under ``fields``, by default the keys of the first row; a
    missing key is an empty cell, an unknown key an error) or sequences (``fields`` is then the
    header line and is required). ``line_end`` ends every line (``"\\r\\n"`` is the csv module's
    own default, which some committed reports were written with).
    """
    rows = list(rows)
    if not rows and fields is None:
        raise ValueError("csv_text: no rows and no fields, so there is no header line to write")
    buffer = io.StringIO()
    if rows and isinstance(rows[0], Mapping):
        names = list(fields) if fields is not None else list(rows[0])
        writer = csv.DictWriter(buffer, fieldnames=names, lineterminator=line_end)
        writer.writeheader()
        writer.writerows(rows)
    else:
        if fields is None:
            raise ValueError("csv_text: rows that are sequences need fields (the header line)")
        writer = csv.writer(buffer, lineterminator=line_end)
        writer.writerow(fields)
        writer.writerows(rows)
    return buffer.getvalue()


def write_csv(path: str | Path, rows: Iterable[Mapping | Sequence], fields: Sequence[str] | None = None, *,
              line_end: str = "\n") -> str:
    """Write :func:`csv_text` to ``path`` byte for byte (no newline translation); returns the text."""
    text = csv_text(rows, fields, line_end=line_end)
    with open(path, "w", newline="") as fh:
        fh.write(text)
    return text


def read_csv(path: str | Path) -> list[dict[str, str]]:
    """The rows of a CSV file with a header line, one ``dict`` (column -> text) per row."""
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def pyplot():
    """``matplotlib.pyplot`` on the Agg backend (no display needed; imported on first use)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig, path: str | Path, *, dpi: float | None = None, software_tag: bool = False) -> None:
    """Lay out ``fig``, write it to ``path`` and close it.

    ``dpi`` defaults to the figure's own. Without ``software_tag`` the PNG carries no matplotlib
    version string, so it does not change when only matplotlib's version does.
    """
    fig.tight_layout()
    kwargs = {} if software_tag else {"metadata": {"Software": None}}
    if dpi is not None:
        kwargs["dpi"] = dpi
    fig.savefig(path, **kwargs)
    pyplot().close(fig)
