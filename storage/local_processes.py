"""What the local PostgreSQL and Redis servers need from the operating system.

Private directories (no other local user may reach a server's socket), secrets
kept in files only the service user can read, a record of which process owns a
running server (so one left by a killed process is recognised as stale), and
the Linux parent-death signal that stops a server when the process that
started it dies, even by ``kill -9``.
"""

from __future__ import annotations

import ctypes
import logging
import os
import secrets
import signal
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

from storage.errors import LocalServerError

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


def private_dir(path: Path, *, uid: int | None = None, gid: int | None = None) -> Path:
    """Create ``path`` (mode 0700) or tighten it; refuse one another local user controls.

    ``uid``/``gid``: the owner it must have (default: this process). A directory
    under a shared place like /tmp could have been created by someone else first,
    who would then control the sockets in it.
    """
    uid = os.geteuid() if uid is None else uid
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode):
        raise LocalServerError(f"{path} is not a directory")
    if info.st_uid != uid:
        if os.geteuid() != 0 or info.st_uid != 0:
            raise LocalServerError(
                f"{path} belongs to user id {info.st_uid}, not {uid}: refusing to put a server socket there"
            )
        os.chown(path, uid, -1 if gid is None else gid)  # root made it before deciding the owner
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path


def read_or_create_secret(path: Path) -> str:
    """The secret kept in ``path`` (mode 0600), generated on first use; never logged."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        return read_secret(path)
    with os.fdopen(fd, "w") as out:
        out.write(secrets.token_hex(32) + "\n")
    return read_secret(path)


def read_secret(path: Path) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd) as src:
        if stat.S_IMODE(os.fstat(src.fileno()).st_mode) & 0o077:
            os.fchmod(src.fileno(), 0o600)
        value = src.read().strip()
    if not value:
        raise LocalServerError(f"the secret file {path} is empty")
    return value


def write_secret(path: Path, value: str) -> None:
    """Replace ``path`` atomically with ``value`` (mode 0600)."""
    staging = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(value + "\n")
    os.replace(staging, path)


# -- which process owns a running server -------------------------------------------------


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (tells a reused pid apart)."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # the command name (field 2) may hold spaces and parentheses: split after its last ')'
    return raw.rsplit(")", 1)[1].split()[19]


def process_alive(pid: int, start_time: str | None = None) -> bool:
    current = _start_time(pid)
    if current is None:
        return False
    return start_time is None or current == start_time


def write_owner(path: Path) -> None:
    """Record that this process started the server whose data directory holds ``path``."""
    pid = os.getpid()
    path.write_text(f"{pid} {_start_time(pid) or ''}\n")


def owner_alive(path: Path) -> bool:
    """Whether the process recorded in ``path`` is still running (False when there is no record)."""
    try:
        fields = path.read_text().split()
        pid = int(fields[0])
    except (OSError, ValueError, IndexError):
        return False
    return process_alive(pid, fields[1] if len(fields) > 1 else None)


def read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def stop_process(pid: int, sig: int, timeout_s: float) -> bool:
    """Send ``sig`` and wait for ``pid`` to be gone; SIGKILL after ``timeout_s``. True if it went."""
    start = _start_time(pid)
    if start is None:
        return True
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout_s
    while process_alive(pid, start) and not _is_zombie(pid):
        if time.monotonic() > deadline:
            log.warning("process %d did not stop within %s s; killing it", pid, timeout_s)
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                return True
            deadline = time.monotonic() + 10
            sig = signal.SIGKILL
        time.sleep(0.02)
    return True


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def exe_of(pid: int) -> str:
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


# -- dying with the parent --------------------------------------------------------------


def die_with_parent(sig: int) -> Callable[[], None] | None:
    """A ``preexec_fn`` making the child get ``sig`` when this process dies (Linux only).

    The kernel sends it when the *thread* that forked exits, so it is only armed
    from the main thread (which lives as long as the process); servers started
    from another thread rely on the stale-server check of the next start instead.
    It must be set after the child changed user (a credential change clears it),
    which is where subprocess runs ``preexec_fn``.
    """
    if threading.current_thread() is not threading.main_thread():
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
    except (OSError, AttributeError):
        return None
    parent = os.getpid()

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return arm
