"""Admission control: with every API slot busy, the next request waits its bounded time and is
then shed with 503 in the API's error shape; calls' routes and health probes are never shed."""

import asyncio

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from voice_server.api_admission import ApiAdmission, api_admission_middleware


def _app(admission: ApiAdmission, release: asyncio.Event) -> web.Application:
    async def slow(request):
        await release.wait()
        return web.json_response({"ok": True})

    async def fast(request):
        return web.json_response({"ok": True})

    app = web.Application(middlewares=[api_admission_middleware(admission)])
    app.router.add_get("/api/v1/slow", slow)
    app.router.add_get("/api/v1/fast", fast)
    app.router.add_get("/media/twilio", fast)
    app.router.add_get("/live", fast)
    return app


async def test_requests_past_the_limit_wait_then_are_shed_and_the_node_recovers():
    shed, in_flight = [], []
    admission = ApiAdmission(2, 0.05, on_in_flight=in_flight.append, on_shed=lambda: shed.append(1))
    release = asyncio.Event()
    client = TestClient(TestServer(_app(admission, release)))
    await client.start_server()
    try:
        busy = [asyncio.create_task(client.get("/api/v1/slow")) for _ in range(2)]
        while admission.in_flight < 2:
            await asyncio.sleep(0.01)
        refused = await client.get("/api/v1/fast")
        assert refused.status == 503 and refused.headers["Retry-After"] == "1"
        assert (await refused.json())["error"]["code"] == "overloaded"
        assert shed == [1]
        # a live call's media and the probes are never refused for the API's sake
        assert (await client.get("/media/twilio")).status == 200
        assert (await client.get("/live")).status == 200

        release.set()
        assert [r.status for r in await asyncio.gather(*busy)] == [200, 200]
        assert admission.in_flight == 0 and in_flight[-1] == 0
        assert (await client.get("/api/v1/fast")).status == 200
    finally:
        await client.close()


async def test_a_waiting_request_gets_the_slot_that_frees():
    admission = ApiAdmission(1, 5.0)
    release = asyncio.Event()
    client = TestClient(TestServer(_app(admission, release)))
    await client.start_server()
    try:
        busy = asyncio.create_task(client.get("/api/v1/slow"))
        while admission.in_flight < 1:
            await asyncio.sleep(0.01)
        waiting = asyncio.create_task(client.get("/api/v1/fast"))
        await asyncio.sleep(0.05)
        assert not waiting.done()
        release.set()
        assert (await busy).status == 200 and (await waiting).status == 200
    finally:
        await client.close()
