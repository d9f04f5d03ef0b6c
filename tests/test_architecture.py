"""The house plan's rules about code, checked on every run (docs/architecture.md).

- Imports only point down: each room imports only the rooms below it, and no
  package imports ``scripts/``. Dynamic imports (``importlib.import_module``,
  ``__import__`` with a literal name) count like static ones.
- No import cycles between modules, anywhere in the packages or in ``scripts/``.
  Lazy imports inside functions count too (they hide a cycle, they do not
  remove it); only ``if TYPE_CHECKING:`` imports are left out.
- No SQL in ``voice_server``: queries live behind ``crm_core``/``storage`` functions.
- No module in the packages over 500 lines unless its first line says why
  (``# Long module: <reason>``).
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("media", "coaching", "storage", "crm_core", "voice_server", "coachline_pipecat")
TREES = (*PACKAGES, "scripts")
ALLOWED = {
    "media": set(),
    "coaching": set(),
    "storage": set(),
    "crm_core": {"storage"},
    "voice_server": {"media", "coaching", "storage", "crm_core"},
    # the pipecat processors wrap the pure speech and coaching rooms, nothing with I/O
    "coachline_pipecat": {"media", "coaching"},
    "scripts": {"media", "coaching", "storage", "crm_core", "voice_server"},
}
MAX_LINES = 500
LONG_MODULE_MARK = "# Long module: "
_SQL = re.compile(r"\b(SELECT\s+(\w|\*)|INSERT\s+INTO\s+\w|UPDATE\s+\w+\s+SET\b|DELETE\s+FROM\s+\w"
                  r"|ON\s+CONFLICT\b)")
_DB_CALLS = {"fetch", "fetchrow", "fetchval", "executemany", "copy_records_to_table",
             "copy_to_table", "copy_from_query"}
_DYNAMIC_IMPORTERS = {"import_module", "__import__"}


@dataclass
class Module:
    name: str
    path: Path
    tree: ast.Module
    # (module, name) per imported name: ``from a.b import c`` gives ("a.b", "c"),
    # ``import a.b`` gives ("a.b", None); relative imports are resolved
    imports: set[tuple[str, str | None]] = field(default_factory=set)


def _module_name(path: Path, base: Path = ROOT) -> str:
    parts = list(path.relative_to(base).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _type_checking_nodes(tree: ast.AST) -> set[int]:
    """ids of the nodes under ``if TYPE_CHECKING:`` blocks."""
    hidden: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                for child in node.body:
                    hidden.update(id(n) for n in ast.walk(child))
    return hidden


def imported_names(tree: ast.Module, module: str, is_package: bool) -> set[tuple[str, str | None]]:
    """Everything ``tree`` imports, statically or by a literal dynamic import."""
    hidden = _type_checking_nodes(tree)
    found: set[tuple[str, str | None]] = set()
    for node in ast.walk(tree):
        if id(node) in hidden:
            continue
        if isinstance(node, ast.Import):
            found.update((alias.name, None) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_package else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.update((target, alias.name) for alias in node.names)
        elif isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if (name in _DYNAMIC_IMPORTERS and node.args and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str)):
                found.add((node.args[0].value, None))
    return found


def load_modules(base: Path = ROOT, trees: tuple[str, ...] = TREES) -> dict[str, Module]:
    modules: dict[str, Module] = {}
    for top in trees:
        for path in sorted((base / top).rglob("*.py")):
            name = _module_name(path, base)
            tree = ast.parse(path.read_text(), filename=str(path))
            modules[name] = Module(name, path, tree,
                                   imported_names(tree, name, path.name == "__init__.py"))
    return modules


def edges(modules: dict[str, Module]) -> dict[str, set[str]]:
    """module → the modules of ours it imports.

    ``from a import b`` points at ``a.b`` when that is a module, else at ``a``
    (whose ``__init__`` defines ``b``); otherwise the longest prefix that is ours.
    """
    graph: dict[str, set[str]] = {}
    for name, module in modules.items():
        targets = set()
        for base, alias in module.imports:
            if alias is not None and f"{base}.{alias}" in modules:
                targets.add(f"{base}.{alias}")
                continue
            parts = base.split(".")
            for cut in range(len(parts), 0, -1):
                candidate = ".".join(parts[:cut])
                if candidate in modules:
                    targets.add(candidate)
                    break
        targets.discard(name)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    found: list[list[str]] = []
    counter = 0
    for root, children in graph.items():
        if root in index:
            continue
        work = [(root, iter(sorted(children)))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            advanced = False
            for child in children:
                if child not in graph:
                    continue
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                    advanced = True
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            if advanced:
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def sql_in(tree: ast.Module) -> list[tuple[int, str]]:
    """(line, snippet) for every SQL string or database call in ``tree``."""
    hits = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and _SQL.search(node.value):
            hits.append((node.lineno, node.value.strip()[:60]))
        elif (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
              and node.func.attr in _DB_CALLS):
            hits.append((node.lineno, f".{node.func.attr}(…)"))
    return sorted(hits)


MODULES = load_modules()
GRAPH = edges(MODULES)


def _room(name: str) -> str:
    return name.split(".")[0]


@pytest.mark.parametrize("room", TREES)
def test_rooms_import_only_downwards(room):
    offenders = []
    for name, module in MODULES.items():
        if _room(name) != room:
            continue
        rooms = {_room(base) for base, _ in module.imports} & set(TREES)
        bad = rooms - ALLOWED[room] - {room}
        if bad:
            offenders.append(f"{module.path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not offenders, "imports against the house plan:\n" + "\n".join(offenders)


def test_no_import_cycles():
    found = cycles(GRAPH)
    assert not found, "import cycles:\n" + "\n".join(" ↔ ".join(c) for c in found)


def test_voice_server_holds_no_sql():
    offenders = [f"{m.path.relative_to(ROOT)}:{line}: {snippet}"
                 for name, m in MODULES.items() if _room(name) == "voice_server"
                 for line, snippet in sql_in(m.tree)]
    assert not offenders, "SQL belongs behind crm_core/storage functions:\n" + "\n".join(offenders)


def test_long_modules_say_why():
    offenders = []
    for name, module in MODULES.items():
        if _room(name) not in PACKAGES:
            continue
        lines = module.path.read_text().splitlines()
        if len(lines) > MAX_LINES and not lines[0].startswith(LONG_MODULE_MARK):
            offenders.append(f"{module.path.relative_to(ROOT)} ({len(lines)} lines)")
    assert not offenders, (f"split these, or start them with '{LONG_MODULE_MARK}<reason>':\n"
                           + "\n".join(offenders))


# The checkers themselves, on small made-up trees: each must see what it looks for.

def _tree(tmp_path: Path, files: dict[str, str]) -> dict[str, Module]:
    for rel, text in files.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return load_modules(tmp_path, ("pkg",))


def test_the_checker_sees_upward_and_dynamic_imports(tmp_path):
    modules = _tree(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/m.py": "from voice_server.app import create_app\nimport storage.events\n"
                    "import importlib\nimportlib.import_module('scripts.carrier_sim')\n",
    })
    rooms = {_room(base) for base, _ in modules["pkg.m"].imports}
    assert {"voice_server", "storage", "scripts"} <= rooms


def test_the_checker_sees_a_cycle_through_a_lazy_import(tmp_path):
    modules = _tree(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg.b import thing\n",
        "pkg/b.py": "def thing():\n    from pkg import c\n",
        "pkg/c.py": "import pkg.a\n",
        "pkg/d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.a import x\n",
    })
    assert cycles(edges(modules)) == [["pkg.a", "pkg.b", "pkg.c"]]


def test_the_checker_sees_a_package_facade_cycle(tmp_path):
    modules = _tree(tmp_path, {
        "pkg/__init__.py": "from pkg.routes import add\n",
        "pkg/routes.py": "from pkg import Options\n",
    })
    assert cycles(edges(modules)) == [["pkg", "pkg.routes"]]


def test_the_checker_sees_sql(tmp_path):
    tree = ast.parse('q = "SELECT name FROM users WHERE id = $1"\n'
                     'async def f(pool):\n    return await pool.fetchval(q)\n'
                     'note = "select a rep, update the screen"\n')
    assert [line for line, _ in sql_in(tree)] == [1, 3]
