"""Network edges and the live call: the aiohttp app, carrier transports, CallSession, CLI."""
