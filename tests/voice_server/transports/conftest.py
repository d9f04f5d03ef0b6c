"""The carrier tests' shared fixture: a real app with both carriers configured."""

from tests.voice_server.carrier_app import carrier_app  # noqa: F401  (fixture)
