"""Row ids: every business table keys on a UUID; text from URLs and events may not be one."""

from __future__ import annotations

import uuid


def uuid_or_none(value: object) -> uuid.UUID | None:
    """``value`` as a UUID, or None when it is not one (so a lookup answers "not found")."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None
