"""The docs say what the code holds: the tables of methods and datasets list exactly the registered
ones, docs/design.md's layout names every module of the package, and no link between the pages is
dead. (The tables of priors and sampling rules: test_self_description.py; recipes: methods/test_recipes.py.)"""

from __future__ import annotations

import re

import pytest

from benchmark.data import DATASETS
from benchmark.methods import METHODS
from tests.docs_tables import REPO, anchors, links, names, pages, table


def test_the_methods_table_lists_every_registered_method():
    rows = {names(row.split(" | ")[0])[0]: row.split(" | ") for row in table("docs/training.md", "## Methods", 4)}
    assert sorted(rows) == METHODS.names(), "docs/training.md's methods table and the METHODS registry differ"
    for name, (_, shown, _, file) in rows.items():
        method = METHODS.get(name)
        assert shown == method.display_name, f"{name}: tables call it {method.display_name!r}"
        assert file == f"`{method.__module__.replace('.', '/')}.py`", f"{name} lives in {method.__module__}"


def test_the_datasets_table_lists_every_registered_dataset():
    listed = [name for row in table("docs/datasets.md", "# Datasets") for name in names(row)]
    assert sorted(listed) == DATASETS.names(), "docs/datasets.md's table and the DATASETS registry differ"


def test_the_design_layout_names_every_module():
    design = (REPO / "docs/design.md").read_text()
    named = set(re.findall(r"`(benchmark/[\w/.]+)`", design))
    package = REPO / "benchmark"
    modules = {
        str(path.relative_to(REPO)) for path in package.rglob("*.py") if path.name not in ("__init__.py", "__main__.py")
    }
    folders = {f"{path.parent.relative_to(REPO)}/" for path in package.glob("*/__init__.py")}
    assert sorted((modules | folders) - named) == [], "docs/design.md's layout misses these"
    assert sorted(path for path in named if not (REPO / path).exists()) == [], "docs/design.md names what is gone"


@pytest.mark.parametrize("page", pages(), ids=lambda path: str(path.relative_to(REPO)))
def test_every_relative_link_points_to_a_file_and_heading_that_exist(page):
    dead = []
    for target in links(page):
        if re.match(r"[a-z]+:", target):  # https:, mailto:: not ours to check offline
            continue
        file, _, anchor = target.partition("#")
        path = (page.parent / file).resolve() if file else page
        if not path.exists():
            dead.append(f"{target}: no file {path.relative_to(REPO)}")
        elif anchor and (path.suffix != ".md" or anchor not in anchors(path)):
            dead.append(f"{target}: no heading #{anchor} in {path.relative_to(REPO)}")
    assert dead == []


@pytest.mark.parametrize("page", pages(), ids=lambda path: str(path.relative_to(REPO)))
def test_every_file_a_page_names_in_code_exists(page):
    """A page that cites `tests/...py` or `benchmark/...py` as where something is checked or built must
    name a file that is there (tests move with the package they mirror)."""
    named = set(re.findall(r"`((?:tests|benchmark|gpu|tools)/[\w/.-]+\.(?:py|sh|yaml))`", page.read_text()))
    assert sorted(path for path in named if not (REPO / path).exists()) == []
