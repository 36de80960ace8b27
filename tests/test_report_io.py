"""sim.report_io: the one Markdown-table, CSV and plot helper of every report."""

import pytest

from sim.report_io import csv_text, markdown_table, pyplot, read_csv, save_figure, write_csv


def test_markdown_table_alignment_and_rules():
    assert markdown_table(["name", "n"], [["a", 1], ["b", 22]]) == [
        "| name | n |", "| --- | ---: |", "| a | 1 |", "| b | 22 |"]
    assert markdown_table(["x", "y", "z"], [[1, 2, 3]], "lrl", tight_rule=True) == [
        "| x | y | z |", "|---|---:|---|", "| 1 | 2 | 3 |"]
    assert markdown_table(["x"], [[None]], cell=lambda v: "-" if v is None else str(v))[-1] == "| - |"


def test_markdown_table_errors():
    with pytest.raises(ValueError, match=r"align must be one 'l' or 'r' per column \(2 columns\), got 'lrr'"):
        markdown_table(["a", "b"], [], "lrr")
    with pytest.raises(ValueError, match=r"table row has 1 cells, the header 2: \[1\]"):
        markdown_table(["a", "b"], [[1]])


def test_csv_mappings_sequences_and_line_ends(tmp_path):
    assert csv_text([{"a": 1, "b": "x,y"}, {"a": 2}]) == 'a,b\n1,"x,y"\n2,\n'
    assert csv_text([[1, 2]], ["a", "b"], line_end="\r\n") == "a,b\r\n1,2\r\n"
    assert csv_text([], ["a"]) == "a\n"
    with pytest.raises(ValueError, match="rows that are sequences need fields"):
        csv_text([[1, 2]])
    with pytest.raises(ValueError, match="no rows and no fields"):
        csv_text([])
    with pytest.raises(ValueError):   # a key that is not a column is an error, not dropped
        csv_text([{"a": 1, "c": 2}], ["a"])
    path = tmp_path / "t.csv"
    assert write_csv(path, [{"a": 1}], line_end="\r\n") == "a\r\n1\r\n"
    assert path.read_bytes() == b"a\r\n1\r\n"   # no newline translation
    assert read_csv(path) == [{"a": "1"}]


def test_save_figure_software_tag(tmp_path):
    plt = pyplot()
    for tag in (False, True):
        fig, ax = plt.subplots(figsize=(2, 2))
        ax.plot([0, 1], [1, 0])
        save_figure(fig, tmp_path / f"{tag}.png", dpi=50, software_tag=tag)
        assert not plt.get_fignums()   # closed
    assert b"Matplotlib version" not in (tmp_path / "False.png").read_bytes()
    assert b"Matplotlib version" in (tmp_path / "True.png").read_bytes()
