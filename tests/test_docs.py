"""The repository documents itself: no reference to a document outside it, no dangling docs/ path.

Code and docs cite the project's own pages, e.g. "docs/numerics.md §3.1" (the contract in brief
at the top of docs/numerics.md) or "docs/cost_model.md §3". These tests read every Python,
Markdown and TOML file of the repository (tracked, or new and not ignored) and check that

- nothing cites a design document that users never see (the forbidden spellings below);
- every ``docs/<name>.md`` path that a file mentions exists;
- every numbered section cited as ``docs/<name>.md §N`` (also ``§N.M`` and lists such as
  ``§1, §3.1`` or ``§3 and §3.1``) is a heading of that page;
- every relative Markdown link in README.md and docs/ points at a file that exists.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SUFFIXES = (".py", ".md", ".toml")
EXTRA_FILES = (".ci/run",)
SKIP_DIRS = {".git", "build", "sim_build", "runs", "__pycache__", ".pytest_cache"}

# Spelled in two pieces so that this file does not match itself.
FORBIDDEN = ("DESIGN" + " §", "DESIGN" + "\n§", "shared/" + "DESIGN", "DESIGN" + ".md")

DOC_PATH = re.compile(r"(?<![\w./-])docs/([\w-]+(?:/[\w-]+)*\.md)")
SECTION_REF = re.compile(r"(?<![\w./-])docs/([\w-]+\.md),?\s+(§\d+(?:\.\d+)?(?:(?:,\s*|\s+and\s+|/)§\d+(?:\.\d+)?)*)")
SECTION_NUMBER = re.compile(r"§(\d+(?:\.\d+)?)")
# "## 3. Energy", "### §3.1 Chunked accumulation", "### <a id="s1"></a>§1 ..."
HEADING_NUMBER = re.compile(r"^#{1,6}\s+(?:<a [^>]*></a>\s*)?§?(\d+(?:\.\d+)?)(?:\.|\s)")
MD_LINK = re.compile(r"\]\(([^)\s]+)\)")


def repository_files(root: Path = ROOT) -> list[Path]:
    """Tracked files plus new ones git does not ignore; a plain walk where there is no git checkout."""
    try:
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
                             cwd=root, capture_output=True, check=True).stdout.decode()
        names = [n for n in out.split("\0") if n]
    except (OSError, subprocess.CalledProcessError):
        names = [str(p.relative_to(root)) for p in root.rglob("*")
                 if p.is_file() and not SKIP_DIRS & set(p.relative_to(root).parts)
                 and not any(part.endswith(".egg-info") for part in p.relative_to(root).parts)]
    files = [root / n for n in names if n.endswith(SUFFIXES) or n in EXTRA_FILES]
    return sorted(p for p in files if p.is_file())


def forbidden_mentions(text: str) -> list[tuple[int, str]]:
    """(line, spelling) of every reference to a design document outside the repository."""
    found = []
    for spelling in FORBIDDEN:
        start = 0
        while (i := text.find(spelling, start)) >= 0:
            found.append((text.count("\n", 0, i) + 1, spelling))
            start = i + 1
    return sorted(found)


def doc_paths(text: str) -> set[str]:
    """Every ``docs/<name>.md`` path mentioned in the text."""
    return {"docs/" + m.group(1) for m in DOC_PATH.finditer(text)}


def section_refs(text: str) -> set[tuple[str, str]]:
    """(``docs/<name>.md``, section number) of every numbered citation such as ``docs/numerics.md §3.1``."""
    refs = set()
    for m in SECTION_REF.finditer(text):
        for number in SECTION_NUMBER.findall(m.group(2)):
            refs.add(("docs/" + m.group(1), number))
    return refs


def heading_numbers(markdown: str) -> set[str]:
    """The section numbers of a page's headings, outside fenced code blocks."""
    numbers, fenced = set(), False
    for line in markdown.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (m := HEADING_NUMBER.match(line)):
            numbers.add(m.group(1))
    return numbers


def broken_links(md_file: Path) -> list[str]:
    """Relative link targets of a Markdown file that do not exist (URLs and #anchors are not checked)."""
    bad = []
    for target in MD_LINK.findall(md_file.read_text(encoding="utf-8")):
        if re.match(r"[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
            continue
        path = target.split("#", 1)[0]
        if path and not (md_file.parent / path).exists():
            bad.append(target)
    return bad


FILES = repository_files()


def _text(path: Path) -> str:
    return path.read_text(encoding="utf-8", errors="replace")


def test_the_scan_sees_the_repository():
    names = {str(p.relative_to(ROOT)) for p in FILES}
    assert {"README.md", "docs/numerics.md", "model/formats.py", "tests/test_docs.py"} <= names
    assert len(FILES) > 100


def test_no_reference_to_a_design_document_outside_the_repository():
    found = [f"{p.relative_to(ROOT)}:{line}: {spelling!r}"
             for p in FILES for line, spelling in forbidden_mentions(_text(p))]
    assert not found, "cite the project's docs (e.g. docs/numerics.md §3.1) instead:\n" + "\n".join(found)


def test_every_mentioned_docs_page_exists():
    missing = sorted(f"{p.relative_to(ROOT)}: {doc}"
                     for p in FILES for doc in doc_paths(_text(p)) if not (ROOT / doc).is_file())
    assert not missing, "mentioned but not in the repository:\n" + "\n".join(missing)


def test_every_cited_section_is_a_heading_of_its_page():
    headings: dict[str, set[str]] = {}
    missing = []
    for p in FILES:
        for doc, number in sorted(section_refs(_text(p))):
            if not (ROOT / doc).is_file():
                continue  # reported by test_every_mentioned_docs_page_exists
            if doc not in headings:
                headings[doc] = heading_numbers(_text(ROOT / doc))
            if number not in headings[doc]:
                missing.append(f"{p.relative_to(ROOT)}: {doc} §{number}")
    assert not missing, "cited sections that are no heading of their page:\n" + "\n".join(missing)


def test_the_contract_in_brief_numbers_every_section():
    """docs/numerics.md states the whole contract, §1 to §8, so every citation has a home."""
    numbers = heading_numbers(_text(ROOT / "docs" / "numerics.md"))
    assert {"1", "2", "3", "3.1", "4", "5", "6", "7", "8"} <= numbers


@pytest.mark.parametrize("md_file", [p for p in FILES if p.suffix == ".md"
                                     and (p.parent == ROOT or p.parent == ROOT / "docs")],
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_markdown_links_resolve(md_file):
    assert not broken_links(md_file)


# -- the checkers themselves find what they are meant to find --------------------------------

def test_forbidden_mentions_finds_every_spelling():
    text = ("ok line\nsee DESIGN" + " §3.1 here\n(DESIGN" + "\n§2) and ../shared/" + "DESIGN" + ".md\n"
            "design §3 and docs/numerics.md §3 are fine\n")
    assert forbidden_mentions(text) == [(2, "DESIGN" + " §"), (3, "DESIGN" + "\n§"),
                                        (4, "DESIGN" + ".md"), (4, "shared/" + "DESIGN")]


def test_doc_paths_and_section_refs():
    text = ("see docs/numerics.md §3.1, (docs/cost_model.md §3) and docs/numerics.md §1, §3.1;\n"
            "docs/numerics.md §3 and §3.1, docs/numerics.md §2 step 5, docs/hardware.md, "
            "docs/" "sub/page.md; not my_docs/x.md nor ../docs/y.md\n")
    assert doc_paths(text) == {"docs/numerics.md", "docs/cost_model.md", "docs/hardware.md",
                               "docs/" "sub/page.md"}
    assert section_refs(text) == {("docs/numerics.md", "3.1"), ("docs/cost_model.md", "3"),
                                  ("docs/numerics.md", "1"), ("docs/numerics.md", "3"),
                                  ("docs/numerics.md", "2")}


def test_heading_numbers():
    page = ("# Title\n## 3. Energy\n### §3.1 Chunks\n### <a id=\"s1\"></a>§1 Format\n"
            "```\n## 9. in a code block\n```\n#### §4 Training\n"
            "Not a heading §7\n")
    assert heading_numbers(page) == {"3", "3.1", "1", "4"}


def test_broken_links(tmp_path):
    (tmp_path / "there.md").write_text("x")
    page = tmp_path / "page.md"
    page.write_text("[a](there.md) [b](missing.md#x) [c](https://example.org) [d](#local) [e](there.md#y)")
    assert broken_links(page) == ["missing.md#x"]
