"""Phone numbers as one spelling: E.164, so a call's number and a lead's stored phone compare.

Carriers send E.164 with the plus (Twilio) or without it (Vonage ``14155550134``,
many SIP trunks); people type leads' phones any way they like
(``(415) 555-0134``, ``+1 415-555-0134``, ``011 44 20 7946 0958``). A number
written without a country code is read in ``region`` (an ISO country code; the
live path passes the country of the organisation's own number on the call).

Without a plus, the national reading is tried before the international one,
and a valid number is preferred to one that only has a possible length:
``14155550134`` in the US is +1 415 555 0134, ``442079460958`` there is the
London number +44 20 7946 0958 (no US number has 12 digits).
"""

from __future__ import annotations

from dataclasses import dataclass

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumber, PhoneNumberFormat

MAX_INPUT = 64  # longer text is not a phone number; it is not parsed at all


@dataclass(frozen=True, slots=True)
class E164:
    number: str  # "+14155550134"
    national: str  # the national significant number, "4155550134"
    region: str | None  # the main country of its calling code, "US"


def _readings(text: str, region: str | None) -> list[PhoneNumber]:
    stripped = text.strip()
    tries: list[tuple[str, str | None]] = []
    if stripped.startswith("+"):
        tries.append((stripped, None))
    else:
        if region:
            tries.append((stripped, region))
        digits = "".join(c for c in stripped if c.isdigit())
        if digits:
            tries.append(("+" + digits, None))
    readings = []
    for candidate, country in tries:
        try:
            readings.append(phonenumbers.parse(candidate, country))
        except NumberParseException:
            continue
    return readings


def to_e164(text: str | None, region: str | None = None) -> E164 | None:
    """``text`` as E.164, read in ``region`` when it has no country code; None when it is not a
    phone number (a SIP user name, ``anonymous``, too short or too long)."""
    if not text or len(text) > MAX_INPUT:
        return None
    readings = _readings(text, region)
    chosen = next((n for n in readings if phonenumbers.is_valid_number(n)), None) or next(
        (n for n in readings if phonenumbers.is_possible_number(n)), None
    )
    if chosen is None:
        return None
    return E164(
        phonenumbers.format_number(chosen, PhoneNumberFormat.E164),
        phonenumbers.national_significant_number(chosen),
        phonenumbers.region_code_for_country_code(chosen.country_code),
    )


def region_of(text: str | None) -> str | None:
    """The country of a number written with its country code (an org's own line: ``+1…`` or,
    as Vonage writes it, ``1…``); None when it cannot be told."""
    number = to_e164(text)
    if number is None or not (number.region or "").isalpha():
        return None  # "ZZ" unknown, "001" a non-geographic code: no national reading
    return None if number.region == phonenumbers.UNKNOWN_REGION else number.region
