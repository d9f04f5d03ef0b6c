"""``POST /api/v1/calls/outbound``: place a call through a carrier and return the call resource.

Authenticated like the rest of the CRM API (``crm_core.auth.authenticate``).
A rep calls as themselves; a manager or admin may place a call for a rep
they may assign records to. The number defaults to the lead's phone.
"""

from __future__ import annotations

import logging
import re
from typing import Literal
from uuid import UUID

from aiohttp import web
from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from crm_core.api.access import check_assignable
from crm_core.api.models import CallRecord
from crm_core.api.records import load_visible
from crm_core.api_errors import ApiError, BadRequest, Unprocessable, validation_details
from crm_core.auth import authenticate
from crm_core.calls import NewCall, create_call, get_call, update_call_status
from crm_core.dialing import DialerError, OutboundCallRequest
from voice_server.app_keys import RUNTIME
from voice_server.carriers.edge import place_outbound_call

log = logging.getLogger(__name__)

PATH = "/api/v1/calls/outbound"
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


class CarrierUnavailable(ApiError):
    status, code = 502, "carrier_error"


class OutboundCallBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    carrier: Literal["twilio", "vonage"]
    to_number: str | None = None  # E.164; defaults to the lead's phone
    lead_id: UUID | None = None
    deal_id: UUID | None = None
    rep_id: UUID | None = None  # defaults to the caller
    from_number: str | None = None

    @field_validator("to_number", "from_number")
    @classmethod
    def _e164(cls, value: str | None) -> str | None:
        if value is not None and not _E164.match(value):
            raise ValueError("must be an E.164 number such as +15551234567")
        return value


async def outbound_call(request: web.Request) -> web.Response:
    try:
        me = await authenticate(request)
        try:
            body = OutboundCallBody.model_validate_json(await request.read() or b"{}")
        except ValidationError as exc:
            raise Unprocessable("the body failed validation", validation_details(exc)) from None
        rep_id = str(body.rep_id) if body.rep_id else me.user_id
        pool = request.app[RUNTIME].pool
        async with pool.acquire() as conn:
            await check_assignable(conn, me, rep_id)
            to_number = body.to_number
            if body.lead_id is not None:
                lead = await load_visible(conn, me, table="leads", record_id=str(body.lead_id),
                                          owner_column="owner_id", what="lead")
                to_number = to_number or lead["phone"]
            if not to_number or not _E164.match(to_number):
                raise BadRequest("give to_number, or a lead with an E.164 phone number",
                                 code="no_number")
            row = await create_call(conn, NewCall(
                org_id=me.org_id, carrier=body.carrier, direction="outbound",
                from_number=body.from_number, to_number=to_number, rep_id=rep_id,
                lead_id=str(body.lead_id) if body.lead_id else None,
                deal_id=str(body.deal_id) if body.deal_id else None,
            ))
        call_id = str(row["id"])
        dial = OutboundCallRequest(
            org_id=me.org_id, call_id=call_id, carrier=body.carrier, to_number=to_number,
            from_number=body.from_number, rep_id=rep_id,
            lead_id=str(body.lead_id) if body.lead_id else None,
            deal_id=str(body.deal_id) if body.deal_id else None,
        )
        try:
            await place_outbound_call(request.app, dial)
        except DialerError as exc:
            async with pool.acquire() as conn:
                await update_call_status(conn, call_id, "failed")
            raise CarrierUnavailable(str(exc), {"call_id": call_id}) from None
        async with pool.acquire() as conn:
            placed = await get_call(conn, call_id)
        return web.json_response(CallRecord.model_validate(dict(placed)).model_dump(mode="json"),
                                 status=201)
    except ApiError as exc:
        return exc.response()
