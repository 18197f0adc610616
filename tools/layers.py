"""The shape of the `benchmark` package, read from its source: import cycles, imports that run up the
layer order of pyproject.toml's import-linter contract, the largest files and the long functions.

    python tools/layers.py            # cycles and upward imports (exit 1 if there is any)
    python tools/layers.py --sizes    # also: files over 500 lines, the ten largest, functions over 60 lines
    python tools/layers.py --check-sizes   # exit 1 on a function over 60 lines without a reason

Every import counts: at the top of a module, inside a function, under TYPE_CHECKING. A function over
60 lines says why on the line above its `def` (or its first decorator): `# long: <reason>`.
`lint-imports` (make lint) enforces the layers; this script measures, with no dependency but Python.
"""

from __future__ import annotations

import argparse
import ast
import sys
from dataclasses import dataclass
from pathlib import Path

import tomllib

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "benchmark"
MAX_FILE_LINES = 500
MAX_FUNCTION_LINES = 60
REASON = "# long:"
SCRIPTS = ("gpu", "tools")  # measured for size beside the package


@dataclass(frozen=True)
class Import:
    importer: str
    imported: str
    line: int
    where: str  # "top", "function" or "type-checking"


def module_files(root: Path) -> dict[str, Path]:
    """Module name -> file, for every .py file of the package (a package by its __init__.py)."""
    modules = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The package module an import names: itself, or its nearest enclosing module (a name in it)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def imports(modules: dict[str, Path]) -> list[Import]:
    found: list[Import] = []
    for module, path in modules.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        _visit(ast.parse(path.read_text()), "top", module, package, modules, found)
    return found


def _named(node: ast.AST, package: str, modules: dict[str, Path]) -> list[str]:
    """The module names an import statement names (a name imported from a package may be a module)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    if not isinstance(node, ast.ImportFrom):
        return []
    base = node.module or ""
    if node.level:
        anchor = package
        for _ in range(node.level - 1):
            anchor = anchor.rpartition(".")[0]
        base = f"{anchor}.{base}" if base else anchor
    return [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]


def _visit(node: ast.AST, where: str, module: str, package: str, modules: dict[str, Path], found: list) -> None:
    for child in ast.iter_child_nodes(node):
        inner = where
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) and where == "top":
            inner = "function"
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            inner = "type-checking"
        for name in _named(child, package, modules):
            target = _resolve(name, modules) if name.split(".")[0] == PACKAGE else None
            edge = Import(module, target, child.lineno, inner) if target and target != module else None
            if edge is not None and edge not in found:
                found.append(edge)
        _visit(child, inner, module, package, modules, found)


def cycles(edges: list[Import]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.importer, set()).add(edge.imported)
        graph.setdefault(edge.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in sorted(graph[node]):
            if other not in index:
                connect(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    sys.setrecursionlimit(10_000)
    for node in sorted(graph):
        if node not in index:
            connect(node)
    return sorted(found)


def layer_contract(config: Path) -> tuple[str, list[list[str]]]:
    """The container and its layers (high to low, each a list of sibling names) of the `layers`
    contract in a pyproject.toml's [tool.importlinter]."""
    settings = tomllib.loads(config.read_text())["tool"]["importlinter"]
    for contract in settings["contracts"]:
        if contract["type"] == "layers":
            layers = [[name.strip() for name in line.replace("|", ":").split(":")] for line in contract["layers"]]
            return contract["containers"][0], layers
    raise SystemExit(f"{config}: no layers contract under [tool.importlinter]")


def upward(edges: list[Import], container: str, layers: list[list[str]]) -> list[tuple[Import, str, str]]:
    """Each import whose importer sits in a lower layer than what it imports (direct imports only)."""
    height = {f"{container}.{name}": len(layers) - i for i, line in enumerate(layers) for name in line}

    def layer_of(module: str) -> str | None:
        while module and module not in height:
            module = module.rpartition(".")[0]
        return module or None

    found = []
    for edge in edges:
        low, high = layer_of(edge.importer), layer_of(edge.imported)
        if low and high and low != high and height[low] < height[high]:
            found.append((edge, low, high))
    return found


def function_lengths(modules: dict[str, Path], root: Path) -> list[tuple[int, str, str | None]]:
    """(lines, file:line name, reason) of every function over MAX_FUNCTION_LINES lines."""
    long = []
    for path in modules.values():
        text = path.read_text().splitlines()
        for node in ast.walk(ast.parse("\n".join(text))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    first = min([node.lineno] + [d.lineno for d in node.decorator_list])
                    above = text[first - 2].strip() if first > 1 else ""
                    reason = above[len(REASON) :].strip() if above.startswith(REASON) else None
                    where = f"{path.relative_to(root)}:{node.lineno} {node.name}"
                    long.append((lines, where, reason))
    return sorted(long, reverse=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=ROOT, help="the checkout to read (default: this one)")
    parser.add_argument("--layers", type=Path, help="pyproject.toml with the layers contract (default: the root's)")
    parser.add_argument("--sizes", action="store_true", help="also list large files and long functions")
    parser.add_argument("--check-sizes", action="store_true", help="fail on a long function without a reason")
    args = parser.parse_args(argv)
    modules = module_files(args.root)
    # the package's public shortcut benchmark.load_backbone imports benchmark.export lazily: not a layer
    edges = [e for e in imports(modules) if e.importer != PACKAGE and e.imported != PACKAGE]
    container, layers = layer_contract(args.layers or args.root / "pyproject.toml")
    found_cycles = cycles(edges)
    found_upward = upward(edges, container, layers)
    print(f"layers of {container}, high to low (each imports only from the lines below it):")
    for line in layers:
        print("  " + " | ".join(line))
    print(f"\nimport cycles: {len(found_cycles)}")
    for component in found_cycles:
        print(f"  {len(component)} modules: {', '.join(component)}")
    print(f"\nupward imports: {len(found_upward)}")
    for edge, low, high in found_upward:
        print(f"  {edge.importer}:{edge.line} -> {edge.imported} ({edge.where}; layer {low} below {high})")
    lazy = [e for e in edges if e.where == "function"]
    print(f"\nfunction-level imports inside the package: {len(lazy)} (in {len({e.importer for e in lazy})} modules)")
    failed = bool(found_cycles or found_upward)
    if args.sizes or args.check_sizes:
        files = {**modules, **{str(p): p for d in SCRIPTS for p in sorted((args.root / d).glob("**/*.py"))}}
        sizes = sorted((len(p.read_text().splitlines()), str(p.relative_to(args.root))) for p in files.values())
        big = [s for s in sizes if s[0] > MAX_FILE_LINES]
        print(f"\nfiles over {MAX_FILE_LINES} lines: {len(big)}" + "".join(f"\n  {n:5d} {p}" for n, p in big))
        print("\nten largest files:" + "".join(f"\n  {n:5d} {p}" for n, p in reversed(sizes[-10:])))
        long = function_lengths(files, args.root)
        print(f"\nfunctions over {MAX_FUNCTION_LINES} lines: {len(long)}")
        for lines, where, reason in long:
            missing = "NO REASON GIVEN" if where.startswith(PACKAGE) else "no reason (outside the package: not checked)"
            print(f"  {lines:4d} {where}: {reason or missing}")
        # the check holds the package to it; gpu/ and tools/ are measured, not checked
        if args.check_sizes and any(reason is None and where.startswith(PACKAGE) for _, where, reason in long):
            failed = True
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
