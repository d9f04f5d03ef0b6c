"""The house plan's one rule about imports: they only point down."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ROOMS = ("media", "coaching", "storage", "crm_core", "voice_server")
ALLOWED = {
    "media": set(),
    "coaching": set(),
    "storage": set(),
    "crm_core": {"storage"},
    "voice_server": {"media", "coaching", "storage", "crm_core"},
}


def _imported_rooms(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        found.update(name.split(".")[0] for name in names if name.split(".")[0] in ROOMS)
    return found


@pytest.mark.parametrize("room", ROOMS)
def test_rooms_import_only_downwards(room):
    offenders = []
    for path in sorted((ROOT / room).rglob("*.py")):
        bad = _imported_rooms(path) - ALLOWED[room] - {room}
        if bad:
            offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert not offenders, "imports against the house plan:\n" + "\n".join(offenders)


def test_the_checker_sees_an_upward_import(tmp_path):
    bad = tmp_path / "m.py"
    bad.write_text("from voice_server.app import create_app\nimport storage.events\n")
    assert _imported_rooms(bad) == {"voice_server", "storage"}
