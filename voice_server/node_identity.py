"""The node id a serving process writes on the rows it owns (open recordings).

It must be the same after a restart, so the restarted node recognises what its
previous process left open and finishes it at once instead of waiting for the
rows to go stale. ``COACHLINE_NODE_ID`` wins when set (e.g. the pod name); else
the id is generated once and kept in ``<data_dir>/node-id``. The data
directory's id belongs to one process at a time, held by an exclusive lock on
``<data_dir>/node.lock`` that the kernel releases when the process dies (even
by ``kill -9``); a second process on the same data directory gets an id of its
own and must not recover the first one's rows as its own.
"""

from __future__ import annotations

import fcntl
import logging
import os
import re
import secrets
import socket
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

_SAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass
class NodeIdentity:
    node_id: str
    # whether rows left open under this id were left by a process that is gone
    owns_previous_rows: bool
    _lock_fd: int | None = None

    def release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None


def claim_node_identity(configured: str | None, data_dir: Path) -> NodeIdentity:
    if configured:
        return NodeIdentity(configured, owns_previous_rows=True)
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / "node.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        node_id = f"{_host()}-{os.getpid()}"
        log.warning("another process serves from %s; this one is node %s", data_dir, node_id)
        return NodeIdentity(node_id, owns_previous_rows=False)
    return NodeIdentity(_stored_id(data_dir / "node-id"), owns_previous_rows=True, _lock_fd=fd)


def _host() -> str:
    return _SAFE.sub("-", socket.gethostname())[:40] or "node"


def _stored_id(path: Path) -> str:
    try:
        stored = path.read_text().strip()
    except FileNotFoundError:
        stored = ""
    if stored:
        return stored
    node_id = f"{_host()}-{secrets.token_hex(4)}"
    staging = path.with_name(f".{path.name}.{os.getpid()}")
    staging.write_text(node_id + "\n")
    os.replace(staging, path)
    return node_id
