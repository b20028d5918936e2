"""The layout's rules, read from the package's source (its import statements), not from a run.

- The pure modules never reach the network: verdicts are pure functions of stored answers.
- No import cycle inside the package.
- No private name (``_x``) of another of the package's modules imported or used.

Both walk every import statement of a module, function-local ones included: a function-local
import runs whenever its function is called, so it reaches the network (or closes a cycle of
dependencies) as surely as a module-level one. Deferring an import keeps start-up cheap; it
does not make a dependency go away (the old ``collect`` <-> ``cluster`` cycle was one).
"""

from __future__ import annotations

import ast
import re
from functools import cache
from pathlib import Path

import pytest

import mailauth_survey

PACKAGE = "mailauth_survey"
ROOT = Path(mailauth_survey.__file__).parent

#: The pure modules (and packages: every module under them). Extend this one line.
PURE = ("policies", "analysis", "probes.results")
#: What a pure module must not import, directly or through the package's modules it imports.
NETWORK = ("asyncio", "socket", "ssl", "resolver", "probes.https", "probes.smtp", "probes.tls")
FORBIDDEN = tuple(n if n in ("asyncio", "socket", "ssl") else f"{PACKAGE}.{n}" for n in NETWORK)


def module_files(root: Path = ROOT, package: str = PACKAGE) -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__.py``)."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(root).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join((package, *parts))] = path
    return found


def imports_of(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The dotted names ``path``'s import statements (anywhere in it) name.

    ``from X import y`` names X.y when that is a module of the package (X is its parent,
    imported first anyway), else X.
    """
    is_package = path.name == "__init__.py"
    here = name if is_package else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here.split(".")
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            subs = {f"{target}.{alias.name}" for alias in node.names} & modules.keys()
            out |= subs
            if len(subs) < len(node.names):  # (a name read from X itself, not only submodules)
                out.add(target)
    return out


@cache
def graph() -> dict[str, set[str]]:
    """Each module's imports: the package's modules, and the outside names as written."""
    modules = module_files()
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def reach(start: str, edges: dict[str, set[str]]) -> dict[str, list[str]]:
    """Everything ``start`` imports, transitively within the package, with the path to it."""
    paths = {start: [start]}
    todo = [start]
    while todo:
        mod = todo.pop()
        for dep in sorted(edges.get(mod, ())):
            if dep not in paths:
                paths[dep] = [*paths[mod], dep]
                if dep in edges:
                    todo.append(dep)
    return paths


def forbidden_reach(start: str, edges: dict[str, set[str]]) -> list[str]:
    bad = []
    for dep, path in reach(start, edges).items():
        if any(dep == f or dep.startswith(f + ".") for f in FORBIDDEN):
            bad.append(" -> ".join(path))
    return bad


def pure_modules(edges: dict[str, set[str]]) -> list[str]:
    names = []
    for pure in PURE:
        full = f"{PACKAGE}.{pure}"
        names += [m for m in edges if m == full or m.startswith(full + ".")]
    return sorted(names)


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle among the package's modules (as a path back to its start), or None."""
    state: dict[str, int] = {}  # 1 on the stack, 2 done
    stack: list[str] = []

    def visit(mod: str) -> list[str] | None:
        state[mod] = 1
        stack.append(mod)
        for dep in sorted(edges[mod]):
            if dep not in edges:
                continue
            if state.get(dep) == 1:
                return [*stack[stack.index(dep) :], dep]
            if dep not in state and (found := visit(dep)):
                return found
        stack.pop()
        state[mod] = 2
        return None

    for mod in sorted(edges):
        if mod not in state and (found := visit(mod)):
            return found
    return None


def test_the_pure_list_names_real_modules() -> None:
    edges = graph()
    assert {f"{PACKAGE}.{p}" for p in PURE} <= set(edges)
    assert len(pure_modules(edges)) >= 12  # policies' modules, analysis, probes.results


@pytest.mark.parametrize("module", pure_modules(graph()))
def test_pure_modules_never_reach_the_network(module: str) -> None:
    assert forbidden_reach(module, graph()) == []


def test_the_package_has_no_import_cycle() -> None:
    assert find_cycle(graph()) is None


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_private_name_is_used_across_modules() -> None:
    """Neither ``from .x import _y`` nor ``x._y`` with ``x`` one of the package's modules."""
    modules = module_files()
    stems = {name.rpartition(".")[2] for name in modules}
    found = []
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and (
                node.level or (node.module or "").split(".")[0] == PACKAGE
            ):
                found += [f"{name}: import {a.name}" for a in node.names if _private(a.name)]
            elif (
                isinstance(node, ast.Attribute)
                and _private(node.attr)
                and isinstance(node.value, ast.Name)
                and node.value.id in stems
            ):
                found.append(f"{name}: {node.value.id}.{node.attr}")
    assert found == []


# --- the walker itself: it sees what it must (else the tests above would pass on anything) ---


def _tree(tmp_path: Path, files: dict[str, str]) -> dict[str, set[str]]:
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text, encoding="utf-8")
    modules = module_files(tmp_path, PACKAGE)
    return {name: imports_of(name, path, modules) for name, path in modules.items()}


def test_walker_finds_a_network_import_two_modules_away_and_inside_a_function(tmp_path) -> None:
    edges = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "resolver.py": "import socket\n",
            "policies/__init__.py": "",
            "policies/spf.py": "from . import _syntax\n",
            "policies/_syntax.py": "def f():\n    from ..resolver import Fleet\n",
        },
    )
    assert f"{PACKAGE}.policies.spf -> {PACKAGE}.policies._syntax -> {PACKAGE}.resolver" in (
        forbidden_reach(f"{PACKAGE}.policies.spf", edges)
    )


def test_walker_finds_a_cycle_through_a_function_local_import(tmp_path) -> None:
    edges = _tree(
        tmp_path,
        {
            "__init__.py": "",
            "collect/__init__.py": "",
            "collect/engine.py": "def scan():\n    from .cluster import run\n",
            "collect/cluster.py": "from .engine import scan\n",
        },
    )
    cycle = find_cycle(edges)
    assert cycle is not None and set(cycle) == {
        f"{PACKAGE}.collect.engine",
        f"{PACKAGE}.collect.cluster",
    }


def test_readme_layout_table_names_every_module_and_folder() -> None:
    """A newcomer reads the folder list from the README: every module and folder is in it."""
    readme = (ROOT.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Layout of the code", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`([\w./]+)`", section))
    missing = []
    for path in sorted(ROOT.rglob("*")):
        rel = path.relative_to(ROOT)
        if "__pycache__" in rel.parts or path.name.startswith("."):
            continue
        if path.is_dir():
            if f"{rel.as_posix()}/" not in named:
                missing.append(f"{rel.as_posix()}/")
        elif path.suffix == ".py" and path.stem not in named:
            missing.append(rel.as_posix())
    assert missing == []
