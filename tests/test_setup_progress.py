"""The first `./scripts/run` (scripts/setup-env) shows what it installs and how far it got."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FILTER = ROOT / "scripts" / "install_progress.py"

PIP_OUTPUT = """\
Obtaining file:///work/coachline
  Installing build dependencies: started
Collecting aiohttp<4,>=3.9 (from coachline==0.1.0)
  Downloading aiohttp-3.12.13-cp311-cp311-manylinux_2_17_x86_64.whl (1.7 MB)
Processing /opt/wheels/numpy-2.3.1-cp311-cp311-manylinux_2_28_x86_64.whl (from coachline)
Collecting ctranslate2 (from faster-whisper)
  Downloading ctranslate2-4.6.0-cp311-cp311-manylinux_2_17_x86_64.whl (38.6 MB)
Installing collected packages: numpy, ctranslate2, aiohttp, coachline
Successfully installed aiohttp-3.12.13 coachline-0.1.0 ctranslate2-4.6.0 numpy-2.3.1
"""

APT_OUTPUT = """\
Reading package lists...
0 upgraded, 2 newly installed, 0 to remove and 0 not upgraded.
Unpacking chromium (120.0) ...
Setting up chromium (120.0) ...
Setting up asterisk-core-sounds-en-wav (1.6.1-1) ...
"""


def _run(text: str, tmp_path: Path, label: str, **env: str) -> tuple[str, str]:
    log = tmp_path / f"{label}.log"
    result = subprocess.run([sys.executable, str(FILTER), str(log), label], input=text,
                            capture_output=True, text=True, timeout=60, check=True,
                            env={**os.environ, **env})
    assert result.stdout == ""  # progress goes to stderr; stdout stays the caller's
    return result.stderr, log.read_text()


def test_pip_output_becomes_numbered_package_lines_with_sizes_and_the_install_count(tmp_path):
    shown, log = _run(PIP_OUTPUT, tmp_path, "Python packages")
    lines = shown.splitlines()
    assert all(line.startswith("[setup-env] Python packages: ") for line in lines), shown
    assert "[1] aiohttp" in shown and "[2] numpy" in shown and "[3] ctranslate2" in shown
    assert "downloading 38.6 MB" in shown
    assert "installing 4 packages: numpy, ctranslate2, aiohttp, coachline" in shown
    assert "installed 4 packages" in shown
    assert log == PIP_OUTPUT  # everything kept for reading a failure in full


def test_apt_output_counts_the_debian_packages_set_up(tmp_path):
    shown, _ = _run(APT_OUTPUT, tmp_path, "Debian packages")
    assert "installing 2 Debian packages" in shown
    assert "[1/2] set up chromium" in shown and "[2/2] set up asterisk-core-sounds-en-wav" in shown


def test_a_quiet_installer_still_shows_that_it_is_working(tmp_path):
    # pip unpacks big wheels without a word: a slow producer stands in for it
    producer = ("import sys, time; print('Installing collected packages: torch', flush=True); "
                "time.sleep(2.5); print('Successfully installed torch-2', flush=True)")
    log = tmp_path / "quiet.log"
    with subprocess.Popen([sys.executable, "-c", producer], stdout=subprocess.PIPE) as pip:
        result = subprocess.run([sys.executable, str(FILTER), str(log), "pip"], stdin=pip.stdout,
                                capture_output=True, text=True, timeout=60, check=True,
                                env={**os.environ, "COACHLINE_INSTALL_PROGRESS_EVERY_S": "0.5"})
    assert "still working: installing 1 packages" in result.stderr


def test_setup_env_shows_installer_progress_instead_of_silencing_it():
    script = (ROOT / "scripts" / "setup-env").read_text()
    assert "pip install --quiet" not in script and "pip install -q" not in script
    assert not [line for line in script.splitlines() if "apt-get install" in line and "null" in line]
    assert script.count('progress "') >= 3  # pip itself, the packages, the data packages
    assert 'progress "Debian packages"' in script
