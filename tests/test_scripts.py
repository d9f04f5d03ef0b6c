"""The README's test command itself."""

import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_an_empty_selection_fails_loudly_instead_of_passing():
    result = subprocess.run(
        [str(ROOT / "scripts" / "test"), "tests/test_architecture.py", "-k", "no_such_test_anywhere"],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 1
    assert "collected no tests" in result.stderr
