"""What every resource's bodies share: the base classes, the error body, common patterns."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Role = Literal["rep", "manager", "admin"]
EMAIL = r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$"
PHONE = r"^\+?[0-9 ()./-]{3,32}$"
STAGE = r"^[a-z0-9_]{1,40}$"
Text = Field(None, max_length=200)


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


def absent_or_set(*names: str, changes_something: bool = False) -> ConfigDict:
    """Config for a PATCH body whose ``names`` may be left out but not set to null.

    pydantic documents ``X | None = None`` as nullable; the model's validator refuses null for
    these, so the document says what the server does: the type without null, no default.
    ``changes_something``: the handler answers 400 ``empty_update`` to ``{}`` (records.update_row).
    """

    def edit(schema: dict[str, Any]) -> None:
        if changes_something:
            schema["minProperties"] = 1
        for name in names:
            prop = schema["properties"][name]
            prop.pop("default", None)
            options = [o for o in prop.pop("anyOf", []) if o.get("type") != "null"]
            if len(options) == 1:
                prop.update(options[0])
            elif options:
                prop["anyOf"] = options

    return ConfigDict(json_schema_extra=edit)


# json_schema_extra of a response field carrying a secret shown once: never stored in, nor
# replayed from, the Idempotency-Key cache (crm_core.api.idempotency).
SHOWN_ONCE: dict[str, Any] = {"x-shown-once": True}


class Input(BaseModel):
    # No whitespace stripping: the length limits and patterns in the document hold for the text
    # as sent (a stripped " x…" passed maxLength on the server but not in the document).
    # CSV imports strip their cells themselves.
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _no_nul_characters(self) -> Any:
        # PostgreSQL text and jsonb cannot hold U+0000; refuse it here rather than fail there.
        # An "after" check: a "before" one would make pydantic validate JSON bodies in Python
        # mode, where strict validation refuses the strings that carry dates and UUIDs.
        if _has_nul(self.model_dump()):
            raise ValueError("text must not contain NUL (U+0000) characters")
        return self


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ErrorBody(BaseModel):
    code: str
    message: str
    details: Any = None


class Error(BaseModel):
    error: ErrorBody
