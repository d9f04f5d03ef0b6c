import asyncio

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from storage.local_servers import LocalPostgres, LocalRedis
from voice_server.app import create_app, start_draining
from voice_server.app_keys import LIVE_CALLS
from voice_server.runtime import Runtime
from voice_server.settings import load_settings


@pytest.fixture
def own_servers(tmp_path):
    """Servers of this test's own, so it can stop and restart them."""
    pg = LocalPostgres(tmp_path / "pg").start()
    rd = LocalRedis(tmp_path / "redis").start()
    yield pg, rd
    rd.stop()
    pg.stop()


@pytest_asyncio.fixture(loop_scope="session")
async def client_for(own_servers):
    pg, rd = own_servers
    settings = load_settings({"DATABASE_URL": pg.dsn, "REDIS_URL": rd.url})
    runtime = await Runtime(settings).start()
    app = create_app(settings, runtime)
    client = TestClient(TestServer(app))
    await client.start_server()
    yield client, app, pg, rd
    await client.close()
    await runtime.close()


async def _ready(client) -> tuple[int, dict]:
    resp = await client.get("/ready")
    return resp.status, await resp.json()


async def test_live_answers_while_the_process_runs(client_for):
    client, *_ = client_for
    resp = await client.get("/live")
    assert resp.status == 200


async def test_ready_follows_postgres_down_and_back(client_for):
    client, _app, pg, _rd = client_for
    assert (await _ready(client))[0] == 200

    await asyncio.to_thread(pg.stop)
    status, body = await _ready(client)
    assert status == 503
    assert body["failing"] == ["postgres"]

    await asyncio.to_thread(pg.start)
    status, body = await _ready(client)
    assert (status, body["failing"]) == (200, [])


async def test_ready_follows_redis_down_and_back(client_for):
    client, _app, _pg, rd = client_for
    await asyncio.to_thread(rd.stop)
    status, body = await _ready(client)
    assert status == 503
    assert body["failing"] == ["redis"]
    await asyncio.to_thread(rd.start)
    assert (await _ready(client))[0] == 200


async def test_ready_is_503_while_draining(client_for):
    client, app, *_ = client_for
    start_draining(app)
    status, body = await _ready(client)
    assert (status, body["status"]) == (503, "draining")
    assert (await client.get("/live")).status == 200


async def test_metrics_count_requests_by_route_and_report_live_calls(client_for):
    client, app, *_ = client_for
    await client.get("/live")
    await client.get("/no/such/page/12345")
    app[LIVE_CALLS].add("call-1")
    app[LIVE_CALLS].add("call-2")
    text = await (await client.get("/metrics")).text()
    assert 'coachline_http_requests_total{method="GET",route="/live",status="200"}' in text
    assert 'route="unmatched",status="404"' in text
    assert "/no/such/page" not in text
    assert "coachline_live_calls 2.0" in text
    assert "coachline_http_request_duration_seconds_bucket" in text


async def test_request_id_is_echoed_or_generated(client_for):
    client, *_ = client_for
    resp = await client.get("/live", headers={"X-Request-ID": "abc-123"})
    assert resp.headers["X-Request-ID"] == "abc-123"
    resp = await client.get("/live", headers={"X-Request-ID": "bad id with spaces"})
    generated = resp.headers["X-Request-ID"]
    assert generated != "bad id with spaces" and len(generated) == 32


async def test_ready_names_the_sentiment_model_and_says_when_vader_took_over(client_for, tmp_path,
                                                                            monkeypatch, caplog):
    from coaching import sentiment

    client, *_ = client_for
    try:
        sentiment.reset_default_model()
        await asyncio.to_thread(sentiment.default_model)
        status, body = await _ready(client)
        assert status == 200
        assert body["sentiment"] == {"model": "minilm-int8-logreg", "fallback": None}

        # the trained head's file is missing: still ready (calls are coached), but it says so
        monkeypatch.setattr(sentiment.MiniLMSentiment, "HEAD_PATH", tmp_path / "missing.npz")
        sentiment.reset_default_model()
        with caplog.at_level("WARNING", logger="coaching.sentiment"):
            await asyncio.to_thread(sentiment.default_model)
        assert "falling back to VADER" in caplog.text
        status, body = await _ready(client)
        assert status == 200 and body["status"] == "ready"
        assert body["sentiment"]["model"] == "vader+sales"
        assert "missing.npz is missing" in body["sentiment"]["fallback"]
    finally:
        monkeypatch.undo()
        sentiment.reset_default_model()
