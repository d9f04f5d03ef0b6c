"""POST /api/v1/calls/outbound: place a call through a carrier and return the call resource.

A rep calls as themselves; a manager or admin may place a call for a rep
they may assign records to. The number defaults to the lead's phone. The
carrier is dialled through the ``crm_core.calls.dialing.Dialer`` the node's carrier
edge registered for it (``ApiContext.dialers``); the CRM never imports the edge.

Retries are safe with ``Idempotency-Key`` (the Endpoint wrapper replays the
first answer, so a customer is never dialled twice for one key). A 502 is
replayed too: the carrier may have placed the call before failing to answer,
so only a new key dials again.
"""

from __future__ import annotations

import logging
import re

from crm_core.api.access import check_assignable
from crm_core.api.endpoint import Endpoint
from crm_core.api.records import load_visible
from crm_core.api.reply import Call, Reply
from crm_core.api.schemas.calls import CallRecord, OutboundCallCreate
from crm_core.api_errors import ApiError, BadRequest, Unprocessable
from crm_core.calls.dialing import DialerError, OutboundCallRequest, place_call
from crm_core.calls.records import NewCall, create_call, get_call, update_call_status
from crm_core.changes import ChangeSet

log = logging.getLogger(__name__)
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


class CarrierUnavailable(ApiError):
    status, code = 502, "carrier_error"


async def place_outbound_call(call: Call) -> Reply:
    me, body = call.me, call.body
    assert isinstance(body, OutboundCallCreate)
    rep_id = str(body.rep_id) if body.rep_id else me.user_id
    lead_id = str(body.lead_id) if body.lead_id else None
    deal_id = str(body.deal_id) if body.deal_id else None
    changes = ChangeSet(me.org_id, me.user_id)
    async with call.pool.acquire() as conn, conn.transaction():
        await check_assignable(conn, me, rep_id)
        to_number = body.to_number
        if lead_id is not None:
            lead = await load_visible(conn, me, table="leads", record_id=lead_id, owner_column="owner_id",
                                      what="lead", territory_column="territory")
            to_number = to_number or lead["phone"]
        if deal_id is not None:
            await load_visible(conn, me, table="deals", record_id=deal_id, owner_column="owner_id", what="deal")
        if not to_number or not _E164.match(to_number):
            raise BadRequest("give to_number, or a lead with an E.164 phone number", code="no_number")
        # Refused before a row exists: an unconfigured carrier is the request's problem, not a failed call.
        if body.carrier not in call.context.dialers:
            raise Unprocessable(f"carrier {body.carrier!r} is not configured on this server",
                                {"carrier": body.carrier, "configured": sorted(call.context.dialers)},
                                code="carrier_not_configured")
        row = await create_call(conn, NewCall(
            org_id=me.org_id, carrier=body.carrier, direction="outbound", from_number=body.from_number,
            to_number=to_number, rep_id=rep_id, lead_id=lead_id, deal_id=deal_id,
        ))
        await changes.record(conn, action="call.outbound", resource_type="call", resource_id=str(row["id"]),
                             after=CallRecord.model_validate(dict(row)).model_dump(mode="json"))
    call_id = str(row["id"])
    dial = OutboundCallRequest(org_id=me.org_id, call_id=call_id, carrier=body.carrier, to_number=to_number,
                               from_number=body.from_number, rep_id=rep_id, lead_id=lead_id, deal_id=deal_id)
    try:
        await place_call(call.pool, call.context.dialers, dial)
    except DialerError as exc:
        async with call.pool.acquire() as conn:
            await update_call_status(conn, call_id, "failed")
        raise CarrierUnavailable(str(exc), {"call_id": call_id}) from None
    except Exception:  # any failure: see below
        # Once dialling began we cannot tell whether the carrier placed the call. A 500 would
        # free the Idempotency-Key and let the client's retry dial the customer again, so the
        # answer is a 502 that the key replays.
        log.exception("outbound call %s: dialling failed unexpectedly", call_id)
        raise CarrierUnavailable("placing the call failed; check the call before dialling again",
                                 {"call_id": call_id}) from None
    async with call.pool.acquire() as conn:
        placed = await get_call(conn, call_id)
    return Reply(CallRecord.model_validate(dict(placed)), status=201)


ENDPOINTS = (
    Endpoint("POST", "/api/v1/calls/outbound", place_outbound_call,
             "Place an outbound call through a carrier (send Idempotency-Key: a retry never dials twice)",
             "calls", body=OutboundCallCreate, response=CallRecord, status=201,
             errors=(400, 401, 403, 404, 409, 422, 502)),
)
