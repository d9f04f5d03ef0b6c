import asyncio

import asyncpg
import pytest
import redis

from storage.local_servers import LocalPostgres, LocalRedis


def _query(server: LocalPostgres, sql: str, *args):
    async def run():
        conn = await asyncpg.connect(server.dsn)
        try:
            return await conn.fetchval(sql, *args)
        finally:
            await conn.close()

    return asyncio.run(run())


def test_postgres_keeps_data_across_a_restart_and_stops_cleanly(tmp_path):
    data_dir = tmp_path / "pg"
    server = LocalPostgres(data_dir).start()
    try:
        assert server.owned and server.is_running()
        _query(server, "CREATE TABLE kept (v text)")
        _query(server, "INSERT INTO kept VALUES ('still here')")
    finally:
        server.stop()
    assert not server.is_running()
    assert not list(server.socket_dir.glob(".s.PGSQL.*")), "socket left behind after stop"

    again = LocalPostgres(data_dir).start()
    try:
        assert _query(again, "SELECT v FROM kept") == "still here"
    finally:
        again.stop()


def test_a_second_postgres_handle_reuses_the_running_server_and_leaves_it_up(tmp_path):
    first = LocalPostgres(tmp_path / "pg").start()
    try:
        second = LocalPostgres(tmp_path / "pg").start()
        assert not second.owned
        second.stop()
        assert first.is_running()
    finally:
        first.stop()


def test_postgres_refuses_a_directory_that_is_not_a_cluster(tmp_path):
    (tmp_path / "pg" / "pgdata").mkdir(parents=True)
    (tmp_path / "pg" / "pgdata" / "stray.txt").write_text("not postgres")
    from storage.errors import LocalServerError

    with pytest.raises(LocalServerError, match="not a PostgreSQL data directory"):
        LocalPostgres(tmp_path / "pg").start()


def test_redis_keeps_data_across_a_restart_and_stops_cleanly(tmp_path):
    server = LocalRedis(tmp_path / "redis").start()
    try:
        client = redis.Redis.from_url(server.url)
        client.set("kept", "still here")
        client.close()
    finally:
        server.stop()
    assert not server.is_running()

    again = LocalRedis(tmp_path / "redis").start()
    try:
        client = redis.Redis.from_url(again.url)
        assert client.get("kept") == b"still here"
        client.close()
    finally:
        again.stop()


def test_long_data_paths_get_a_short_socket_path(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    server = LocalRedis(deep).start()
    try:
        assert len(str(server.socket_path)) < 104
        assert server.is_running()
    finally:
        server.stop()
