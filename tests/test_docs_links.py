"""Every relative link in the README, docs/*.md and results/**/README.md points at something in the repository.

A link ``[text](path)`` must name an existing file or folder (relative to the page, never outside the repository);
``path#anchor`` and ``#anchor`` into a Markdown page must name one of its headings (GitHub's anchor rules). Links
with a scheme (https:, mailto:) are not fetched. Code blocks and inline code are ignored.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^\s*(```|~~~)")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")


def pages() -> list[Path]:
    found = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md")), *sorted((ROOT / "results").rglob("README.md"))]
    return [p for p in found if p.is_file()]


def prose_lines(text: str):
    """(line number, line without inline code) outside fenced code blocks."""
    fenced = False
    for number, line in enumerate(text.splitlines(), 1):
        if FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            yield number, re.sub(r"`[^`]*`", "", line)


def slug(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"`([^`]*)`", r"\1", heading.strip())
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link in a heading keeps its text
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    result = set()
    fenced = False
    for line in page.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        match = None if fenced else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            base = slug(match.group(1))
            count = seen.get(base, 0)
            seen[base] = count + 1
            result.add(base if count == 0 else f"{base}-{count}")
    return result


def links(page: Path):
    for number, line in prose_lines(page.read_text(encoding="utf-8")):
        for match in LINK.finditer(line):
            yield number, match.group(1)


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    problems = []
    for number, target in links(page):
        if SCHEME.match(target):
            continue
        where = f"{page.relative_to(root)}:{number}: {target}"
        path_part, _, anchor = target.partition("#")
        dest = (page.parent / path_part).resolve() if path_part else page
        if root not in dest.parents and dest != root:
            problems.append(f"{where} (points outside the repository)")
            continue
        if not dest.exists():
            problems.append(f"{where} (no such file or folder)")
            continue
        if anchor:
            if dest.is_dir() or dest.suffix.lower() != ".md":
                problems.append(f"{where} (an #anchor into something that is not a Markdown page)")
            elif anchor not in anchors(dest):
                problems.append(f"{where} (no heading with anchor #{anchor} in {dest.relative_to(root)})")
    return problems


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page):
    assert broken_links(page) == []


def test_the_checker_sees_pages_and_catches_broken_links(tmp_path):
    assert {"README.md", "docs/limits.md"} <= {str(p.relative_to(ROOT)) for p in pages()}
    assert sum(1 for page in pages() for _ in links(page)) > 50  # the pages' links are really found
    assert slug("The mini benchmark (`m2d-eval mini`)") == "the-mini-benchmark-m2d-eval-mini"
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    (root / "README.md").write_text("# m2d\n## Citation\n")
    (root / "docs" / "limits.md").write_text("# Limits\n")
    page = root / "docs" / "probe.md"
    page.write_text("# Top\n## Top\n[ok](#top-1) [ok](../README.md#citation) [ok](limits.md) [ok](../docs/)\n"
                    "[web](https://example.org/x) `[skip](nowhere.md)`\n```\n[skip](nowhere.md)\n```\n"
                    "[bad](nowhere.md) [bad](#nope) [bad](limits.md#nope) [bad](../../outside.md)\n")
    problems = broken_links(page, root)
    assert [p.split(": ", 1)[1].split(" (")[0] for p in problems] == [
        "nowhere.md", "#nope", "limits.md#nope", "../../outside.md"]
