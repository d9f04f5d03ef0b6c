"""The documentation stays in step with the code and with itself.

The settings table in docs/operations.md names every setting the code reads,
and nothing else; every relative link in README.md and docs/*.md points to a
file in the repository (and, for a Markdown page, to a heading it has).
"""

import re
from pathlib import Path
from urllib.parse import unquote

import pytest

from voice_server.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
OPERATIONS = ROOT / "docs" / "operations.md"
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

# [text](target) and ![alt](target), the target up to the first space or ")".
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_FENCE = re.compile(r"^(```|~~~).*?^\1", flags=re.M | re.S)
_CODE = re.compile(r"`[^`\n]*`")


def _env_name(field: str) -> str:
    return {"database_url": "DATABASE_URL", "redis_url": "REDIS_URL"}.get(field, f"COACHLINE_{field.upper()}")


def test_every_setting_is_in_the_settings_list():
    listed = set(re.findall(r"^\| `([A-Z_]+)` \| `[^`]*` \|$", OPERATIONS.read_text(), flags=re.M))
    expected = {_env_name(f) for f in Settings.model_fields}
    assert expected - listed == set(), "add these to 'All settings' in docs/operations.md"
    assert listed - expected == set(), "docs/operations.md lists settings the code does not read"


def _slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[`*_]|<[^>]+>", "", heading).strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    anchors = set()
    for heading in re.findall(r"^#{1,6}\s+(.*?)\s*#*\s*$", _FENCE.sub("", page.read_text()), flags=re.M):
        slug = _slug(heading)
        n = seen.get(slug, 0)
        seen[slug] = n + 1
        anchors.add(slug if n == 0 else f"{slug}-{n}")
    return anchors


def _links(page: Path) -> list[str]:
    text = _CODE.sub("", _FENCE.sub("", page.read_text()))
    return _LINK.findall(text)


def test_docs_pages_exist():
    assert (ROOT / "docs").is_dir() and len(PAGES) > 1


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_point_into_the_repository(page):
    broken = []
    for target in _links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, flags=re.I):  # http:, https:, mailto: ...
            continue
        path, _, anchor = target.partition("#")
        resolved = (page.parent / unquote(path)).resolve() if path else page
        if ROOT not in resolved.parents and resolved != ROOT:
            broken.append(f"{target} (outside the repository)")
        elif not resolved.exists():
            broken.append(f"{target} (no such file)")
        elif anchor and resolved.suffix == ".md" and anchor not in _anchors(resolved):
            broken.append(f"{target} (no such heading)")
    assert broken == [], f"{page.relative_to(ROOT)}: broken links: {broken}"
