"""What a handler gets and gives back: ``Call`` in, ``Reply`` out, and ``render`` to HTTP.

The endpoint wrapper and the ``Idempotency-Key`` replay both build on these, so neither
has to import the other's module to answer a request.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pydantic_core
from aiohttp import web
from pydantic import BaseModel

from crm_core.api.representation import Shape
from crm_core.api_context import ApiContext
from crm_core.auth.principal import Principal
from storage.events import EventBus


@dataclass(slots=True)
class Reply:
    data: Any = None  # a pydantic model, a dict, or None for 204
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    cookies: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)
    delete_cookies: list[str] = field(default_factory=list)

    def json_body(self) -> Any:
        if isinstance(self.data, BaseModel):
            return self.data.model_dump(mode="json")
        return self.data


@dataclass(slots=True)
class Call:
    """Everything a handler gets: who asks, the validated body, the path, the node's resources."""

    request: web.Request
    principal: Principal | None
    body: Any
    context: ApiContext
    shape: Shape = field(default_factory=Shape)  # fields= and the list's format (GETs)

    @property
    def pool(self) -> asyncpg.Pool:
        return self.context.pool()

    @property
    def bus(self) -> EventBus | None:
        return self.context.bus()

    def path_id(self, name: str = "id") -> str:
        return self.request.match_info[name]

    @property
    def me(self) -> Principal:
        assert self.principal is not None
        return self.principal


Handler = Callable[[Call], Awaitable[Reply]]
# aiohttp >= 3.13 has typed request keys; older ones take strings.
RAW_BODY_KEY: Any = (web.RequestKey("crm_core.raw_body", bytes) if hasattr(web, "RequestKey")
                     else "crm_core.raw_body")


def render(reply: Reply) -> web.Response:
    if reply.status == 204 or reply.data is None:
        response = web.Response(status=reply.status if reply.data is None else 204, headers=reply.headers)
    else:
        # pydantic-core writes the JSON in Rust, straight from the model: a third of
        # model_dump + json.dumps's CPU on a 50-lead page (scripts/bench/api.py).
        body = pydantic_core.to_json(reply.data, by_alias=False)  # by_alias as model_dump's default
        response = web.Response(body=body, status=reply.status, headers=reply.headers,
                                content_type="application/json")
    for name, value, attrs in reply.cookies:
        response.set_cookie(name, value, **attrs)
    for name in reply.delete_cookies:
        response.del_cookie(name, path="/")
    return response
