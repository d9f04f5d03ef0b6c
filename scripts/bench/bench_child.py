"""The bench server child that coaching.py and media_path.py drive: started with ``--serve``.

The child writes its port to a file once it listens, and stops when its stdin closes, so a bench
that dies never leaves a server behind.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path


@asynccontextmanager
async def bench_child(command: list[str], port_file: Path, *, start_timeout_s: float,
                      stop_timeout_s: float) -> AsyncIterator[str]:
    """Run ``command`` (which writes its port to ``port_file``); yield its base URL."""
    # The child lives for the whole run; Popen itself returns at once.
    child = subprocess.Popen(command, stdin=subprocess.PIPE)  # noqa: ASYNC220
    try:
        for _ in range(int(start_timeout_s * 10)):
            if port_file.exists() and port_file.read_text():
                break
            if child.poll() is not None:
                raise SystemExit("the bench server did not start")
            await asyncio.sleep(0.1)
        yield f"http://127.0.0.1:{port_file.read_text()}"
    finally:
        child.stdin.close()
        try:
            child.wait(timeout=stop_timeout_s)
        except subprocess.TimeoutExpired:
            child.kill()
