"""``python -m voice_server.simulator.carrier --carrier twilio --rep-wav A --customer-wav B --server URL``

Plays one call into a running server as the carrier would (signed webhooks,
then the media stream at real-time pace) and prints a JSON report.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from voice_server.simulator.carrier.call import SimulatedCall, SimulationError, simulate_call
from voice_server.simulator.carrier.wav import sound


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m voice_server.simulator.carrier", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--carrier", choices=["twilio", "vonage"], required=True)
    parser.add_argument("--server", default="http://127.0.0.1:8080")
    parser.add_argument("--public-url", help="COACHLINE_PUBLIC_URL of the server (default: --server)")
    parser.add_argument("--to", required=True, help="our number (one of COACHLINE_CARRIER_NUMBERS)")
    parser.add_argument("--rep-wav", type=Path, default=sound("agent-loginok"))
    parser.add_argument("--customer-wav", type=Path, default=sound("hello-world"))
    parser.add_argument("--fast", action="store_true", help="send as fast as possible, not in real time")
    args = parser.parse_args(argv)
    call = SimulatedCall(
        carrier=args.carrier, server=args.server, public_url=args.public_url,
        rep_wav=args.rep_wav, customer_wav=args.customer_wav, to_number=args.to,
        twilio_auth_token=os.environ.get("COACHLINE_TWILIO_AUTH_TOKEN", ""),
        vonage_signature_secret=os.environ.get("COACHLINE_VONAGE_SIGNATURE_SECRET", ""),
        realtime=not args.fast,
    )
    try:
        report = asyncio.run(simulate_call(call))
    except (SimulationError, OSError) as exc:
        print(f"simulated call failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(asdict(report)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
