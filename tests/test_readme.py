"""The README's list of settings names every setting the code reads, and nothing else."""

import re
from pathlib import Path

from voice_server.settings import Settings

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def _env_name(field: str) -> str:
    return {"database_url": "DATABASE_URL", "redis_url": "REDIS_URL"}.get(field, f"COACHLINE_{field.upper()}")


def test_every_setting_is_in_the_readme_list():
    listed = set(re.findall(r"^\| `([A-Z_]+)` \| `[^`]*` \|$", README, flags=re.M))
    expected = {_env_name(f) for f in Settings.model_fields}
    assert expected - listed == set(), "add these to README 'All settings'"
    assert listed - expected == set(), "README lists settings the code does not read"
