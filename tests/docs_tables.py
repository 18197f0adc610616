"""Reading the Markdown pages as a code host renders them: the tables under a heading, the anchors of
the headings, the relative links. The docs tests check these against the registries and the files."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
FENCE = re.compile(r"^```.*?^```", re.S | re.M)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"\[[^\]\n]*\]\(([^)\s]+)\)")


def pages() -> list[Path]:
    """Every Markdown page a reader follows links through: README, CONTRIBUTING and docs/."""
    return [REPO / "README.md", REPO / "CONTRIBUTING.md", *sorted((REPO / "docs").glob("*.md"))]


def table(page: str, heading: str, cells: int = 1) -> list[str]:
    """The first `cells` cells of each row of the first table under `heading` in `page`."""
    text = "\n" + (REPO / page).read_text()
    section = text[text.index("\n" + heading + "\n") + 1 :]
    lines = section[section.index("\n| ") + 1 :].split("\n\n")[0].splitlines()[2:]  # past header and rule
    return [" | ".join(line.strip("| ").split(" | ")[:cells]) for line in lines]


def names(cell: str) -> list[str]:
    """The `code` names of a table cell: `cifar10`, `cifar100` -> [cifar10, cifar100]."""
    return re.findall(r"`([^`]+)`", cell)


def anchors(path: Path) -> set[str]:
    """The anchors a code host gives the headings of a page (GitHub's rule: lower case, punctuation
    other than - and _ dropped, spaces to hyphens, -1, -2, ... for repeats)."""
    seen: dict[str, int] = {}
    found = set()
    for line in FENCE.sub("", path.read_text()).splitlines():
        heading = re.match(r"#{1,6} (.*)", line)
        if not heading:
            continue
        slug = re.sub(r"[^\w\- ]", "", heading.group(1).strip().lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        found.add(f"{slug}-{count}" if count else slug)
    return found


def links(path: Path) -> list[str]:
    """The link targets of a page, outside code blocks and code spans."""
    return LINK.findall(CODE_SPAN.sub("", FENCE.sub("", path.read_text())))
