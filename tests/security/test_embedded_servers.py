"""The embedded PostgreSQL and Redis are private to the user Coachline runs as.

No other local user may reach their sockets, no client without the generated
password is let in, nothing listens on TCP, and a server never outlives the
process that started it (or, when it did, the next start stops it).
"""

from __future__ import annotations

import asyncio
import os
import pwd
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest
import redis

from storage.errors import LocalServerError
from storage.local_processes import private_dir
from storage.local_servers import LocalPostgres, LocalRedis, _make_traversable

REPO_ROOT = Path(__file__).resolve().parents[2]
as_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to act as another local user")


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _processes_of(data_dir: Path) -> list[int]:
    """Pids of processes whose command line names ``data_dir`` (a /proc scan, no psutil)."""
    needle = str(data_dir).encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in cmdline and state != "Z":
            found.append(int(entry.name))
    return found


def _wait_gone(data_dir: Path, timeout_s: float = 30.0) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while (left := _processes_of(data_dir)) and time.monotonic() < deadline:
        time.sleep(0.05)
    return left


async def _current_user(dsn: str) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(
            "SELECT current_user || ' ' || current_setting('listen_addresses')"
        )
    finally:
        await conn.close()


def _hba_rules(server: LocalPostgres) -> list[list[str]]:
    hba = (server.pgdata / "pg_hba.conf").read_text().splitlines()
    return [line.split() for line in hba if line.strip() and not line.lstrip().startswith("#")]


def test_postgres_wants_the_generated_password_and_listens_on_a_private_socket_only(local_postgres):
    # no trust line, no TCP (host) line: only the superuser, over the socket, with its password
    assert _hba_rules(local_postgres) == [["local", "all", "postgres", "scram-sha-256"]]
    assert _mode(local_postgres.socket_dir) == 0o700
    assert _mode(local_postgres.password_file) == 0o600
    assert local_postgres.password_file.stat().st_uid == os.geteuid()
    assert asyncio.run(_current_user(local_postgres.dsn)) == "postgres "  # listen_addresses empty

    without_password = f"postgresql://postgres@/postgres?host={local_postgres.socket_dir}&port=5432"
    with pytest.raises(asyncpg.InvalidPasswordError):
        asyncio.run(_current_user(without_password))
    wrong = f"postgresql://postgres:guess@/postgres?host={local_postgres.socket_dir}&port=5432"
    with pytest.raises(asyncpg.InvalidPasswordError):
        asyncio.run(_current_user(wrong))
    assert local_postgres.password not in repr(local_postgres)


def test_redis_wants_the_generated_password_and_has_no_tcp_listener(local_redis):
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(unix_socket_path=str(local_redis.socket_path)).ping()
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(unix_socket_path=str(local_redis.socket_path), password="guess").ping()
    client = redis.Redis.from_url(local_redis.url)
    try:
        assert client.ping()
        assert client.config_get("port") == {"port": "0"}
    finally:
        client.close()
    assert _mode(local_redis.socket_path.parent) == 0o700
    assert _mode(local_redis.socket_path) & 0o077 == 0
    assert _mode(local_redis.password_file) == 0o600
    # the password is never on a command line, which every local user can read in /proc
    pid = int((local_redis.data_dir / "redis.pid").read_text())
    assert local_redis.password.encode() not in Path(f"/proc/{pid}/cmdline").read_bytes()


def _connects_as(user: pwd.struct_passwd, path: str) -> str:
    """Try ``path`` from a forked child running as ``user`` (no exec: any interpreter path works)."""
    pid = os.fork()
    if pid == 0:  # the child: never return into pytest
        code = 3
        try:
            os.setgroups([])
            os.setgid(user.pw_gid)
            os.setuid(user.pw_uid)
            with socket.socket(socket.AF_UNIX) as s:
                try:
                    s.connect(path)
                    code = 0
                except PermissionError:
                    code = 1
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return {0: "connected", 1: "refused"}.get(os.waitstatus_to_exitcode(status), "error")


@as_root
def test_another_local_user_cannot_reach_either_socket(local_postgres, local_redis):
    nobody = pwd.getpwnam("nobody")
    pg_socket = str(local_postgres.socket_dir / ".s.PGSQL.5432")
    assert _connects_as(nobody, pg_socket) == "refused"
    assert _connects_as(nobody, str(local_redis.socket_path)) == "refused"
    assert _connects_as(pwd.getpwuid(0), pg_socket) == "connected"  # the probe itself works


@as_root
def test_a_socket_directory_someone_else_created_first_is_refused(tmp_path):
    nobody = pwd.getpwnam("nobody")
    planted = tmp_path / "coachline-planted"
    planted.mkdir(mode=0o777)
    os.chown(planted, nobody.pw_uid, nobody.pw_gid)
    with pytest.raises(LocalServerError, match="belongs to user id"):
        private_dir(planted)


def test_a_too_open_socket_directory_is_made_private(tmp_path):
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o777)
    os.chmod(loose, 0o777)
    assert _mode(private_dir(loose)) == 0o700


_START_AND_WAIT = """
import sys, threading, time
from pathlib import Path
from storage.local_servers import LocalPostgres, LocalRedis, _make_traversable

def start():
    LocalPostgres(Path(sys.argv[1]) / "pg").start()
    LocalRedis(Path(sys.argv[1]) / "redis").start()

if sys.argv[2] == "thread":  # no parent-death signal from a thread: the servers will outlive us
    t = threading.Thread(target=start)
    t.start()
    t.join()
else:
    start()
print("ready", flush=True)
time.sleep(600)
"""


def _start_in_child(data_dir: Path, how: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", _START_AND_WAIT, str(data_dir), how],
        cwd=REPO_ROOT,
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line.strip() == "ready", f"child failed (exit {proc.poll()})"
    return proc


def test_servers_die_with_the_process_that_started_them_even_on_sigkill(tmp_path):
    data_dir = tmp_path / "killed"
    proc = _start_in_child(data_dir, "main")
    assert len(_processes_of(data_dir)) >= 2  # the postmaster and redis-server
    proc.kill()
    proc.wait()
    left = _wait_gone(data_dir)
    assert left == [], f"orphaned server processes: {left}"


def test_a_stale_server_left_by_a_dead_starter_is_stopped_and_replaced(tmp_path):
    data_dir = tmp_path / "stale"
    proc = _start_in_child(data_dir, "thread")
    stale = set(_processes_of(data_dir))
    proc.kill()
    proc.wait()
    assert set(_processes_of(data_dir)) & stale, "expected the servers to outlive their starter"

    pg = LocalPostgres(data_dir / "pg").start()
    rd = LocalRedis(data_dir / "redis").start()
    try:
        assert pg.owned and rd.owned, "a stale server was reused instead of replaced"
        assert not set(_processes_of(data_dir)) & stale
        assert asyncio.run(_current_user(pg.dsn)).startswith("postgres")
        client = redis.Redis.from_url(rd.url)
        assert client.ping()
        client.close()
    finally:
        rd.stop()
        pg.stop()
    assert _wait_gone(data_dir) == []


def test_a_cluster_made_by_an_older_version_with_trust_is_locked_down(tmp_path):
    """A data directory initialised with ``trust`` (and its server left running) is taken over."""
    server = LocalPostgres(tmp_path / "old")
    server.pgdata.mkdir(parents=True)
    _make_traversable(server.data_dir)  # what the older version did for its server user
    server._chown(server.pgdata)
    os.chmod(server.pgdata, 0o700)
    assert (
        server._run(
            "initdb", "-D", str(server.pgdata), "-U", "postgres", "--auth=trust", "--no-sync"
        ).returncode
        == 0
    )
    server.socket_dir.mkdir(mode=0o777)
    os.chmod(server.socket_dir, 0o777)
    server._chown(server.socket_dir)
    opts = f"-k {server.socket_dir} -c listen_addresses=''"
    logfile = str(server.pgdata / "old.log")
    assert (
        server._run(
            "pg_ctl", "-D", str(server.pgdata), "-l", logfile, "-w", "-o", opts, "start"
        ).returncode
        == 0
    )
    server.start()
    try:
        assert server.owned
        assert _hba_rules(server) == [["local", "all", "postgres", "scram-sha-256"]]
        assert _mode(server.socket_dir) == 0o700
        without_password = f"postgresql://postgres@/postgres?host={server.socket_dir}&port=5432"
        with pytest.raises(asyncpg.InvalidPasswordError):
            asyncio.run(_current_user(without_password))
        assert asyncio.run(_current_user(server.dsn)).startswith("postgres")
    finally:
        server.stop()
    assert _wait_gone(tmp_path / "old") == []
