"""Condense an installer's output (pip, apt-get) into progress lines on stderr.

    pip install --progress-bar off ... 2>&1 | python scripts/install_progress.py LOG [LABEL]

The first install downloads a few hundred megabytes and says nothing for a minute otherwise.
This prints what is being fetched and how far it got (one line per package, numbered), the
install step with its package count, and a "still working" line whenever the installer has
been quiet for a while (pip unpacks large wheels silently). Every raw line goes to LOG, so a
failure can be read in full; lines that report an error are shown as they come. Standard
library only: it runs before the virtual environment has anything in it.
"""

from __future__ import annotations

import os
import re
import sys
import threading
import time

QUIET_S = float(os.environ.get("COACHLINE_INSTALL_PROGRESS_EVERY_S", "15"))
_COLLECTING = re.compile(r"^Collecting (\S+?)(?:[<>=!~;\[ (]|$)")
_PROCESSING = re.compile(r"^Processing \S*?([^/\s]+?)-\d\S*\.whl")  # a wheel from a local index
_DOWNLOADING = re.compile(r"^\s*Downloading \S+ \(([^)]+)\)")
_INSTALLING = re.compile(r"^Installing collected packages: (.*)$")
_INSTALLED = re.compile(r"^Successfully installed (.*)$")
_APT_SETTING_UP = re.compile(r"^Setting up (\S+)")
_APT_COUNT = re.compile(r"^(\d+) upgraded, (\d+) newly installed")
_ERROR = re.compile(r"^(ERROR|E:|error:)", re.IGNORECASE)


class Progress:
    def __init__(self, label: str, out=sys.stderr) -> None:
        self.label, self.out = label, out
        self.started = self.last_said = time.monotonic()
        self.collected = 0
        self.phase = "resolving"
        self.apt_total = 0
        self.apt_done = 0
        self._lock = threading.Lock()

    def say(self, text: str) -> None:
        with self._lock:
            elapsed = time.monotonic() - self.started
            print(f"[setup-env] {self.label}: {text} ({elapsed:.0f} s)", file=self.out, flush=True)
            self.last_said = time.monotonic()

    def line(self, line: str) -> None:
        if (m := _COLLECTING.match(line)) or (m := _PROCESSING.match(line)):
            self.collected += 1
            self.phase = f"resolving ({self.collected} packages so far)"
            self.say(f"[{self.collected}] {m.group(1)}")
        elif m := _DOWNLOADING.match(line):
            self.say(f"[{self.collected}] downloading {m.group(1)}")
        elif m := _INSTALLING.match(line):
            names = [n.strip() for n in m.group(1).split(",") if n.strip()]
            self.phase = f"installing {len(names)} packages"
            self.say(f"installing {len(names)} packages: {', '.join(names[:8])}"
                     + (", …" if len(names) > 8 else ""))
        elif m := _INSTALLED.match(line):
            self.phase = "done"
            self.say(f"installed {len(m.group(1).split())} packages")
        elif m := _APT_COUNT.match(line):
            self.apt_total = int(m.group(2))
            self.phase = f"installing {self.apt_total} Debian packages"
            self.say(self.phase)
        elif m := _APT_SETTING_UP.match(line):
            self.apt_done += 1
            total = f"/{self.apt_total}" if self.apt_total else ""
            self.say(f"[{self.apt_done}{total}] set up {m.group(1)}")
        elif _ERROR.match(line):
            self.say(line.strip())

    def heartbeat(self, stop: threading.Event) -> None:
        while not stop.wait(min(QUIET_S, 1.0)):
            if time.monotonic() - self.last_said >= QUIET_S:
                self.say(f"still working: {self.phase}")


def main(argv: list[str]) -> int:
    log_path = argv[1] if len(argv) > 1 else os.devnull
    progress = Progress(argv[2] if len(argv) > 2 else "install")
    stop = threading.Event()
    beat = threading.Thread(target=progress.heartbeat, args=(stop,), daemon=True)
    beat.start()
    with open(log_path, "w", encoding="utf-8", errors="replace") as log:
        for raw in sys.stdin:
            log.write(raw)
            log.flush()
            progress.line(raw.rstrip("\n"))
    stop.set()
    beat.join()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
