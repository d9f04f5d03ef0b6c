"""Example values for the OpenAPI document, made from the JSON schemas themselves.

An example a person wrote on a field (pydantic ``Field(examples=[...])``) or a model
(``json_schema_extra={"examples": [...]}``) wins; otherwise a value is made from the field's
name and its constraints (enum, format, bounds, lengths), so every example the document
shows is valid against the schema it illustrates (tests/crm_core/api/test_openapi_docs.py
checks each one with jsonschema).
"""

from __future__ import annotations

from typing import Any

_ID = "3f6b2c1e-8a4d-4e5f-9b7a-1c2d3e4f5a6b"
_WHEN = "2026-03-02T14:30:00Z"
# Values by field name, for the fields whose name says more than their type.
_BY_NAME: dict[str, Any] = {
    "email": "ada@example.com",
    "password": "correct horse battery staple",
    "first_name": "Ada",
    "last_name": "Lovelace",
    "name": "Ada Lovelace",
    "company": "Analytical Engines Ltd",
    "title": "VP Sales",
    "phone": "+14155550123",
    "to_number": "+14155550123",
    "from_number": "+14155550199",
    "event_type": "crm.lead.*",
    "url": "https://hooks.example.com/coachline",
    "currency": "USD",
    "country": "US",
    "territory": "EMEA",
    "organization": "acme",
    "text": "Asked for a demo next Tuesday; competitor evaluation under way.",
    "description": "CRM sync",
    "notes": "Met at the Berlin trade fair.",
    "source": "website",
    "industry": "Software",
    "grade": "A",
    "cursor": None,
    "next_cursor": None,
}
_BY_FORMAT: dict[str, Any] = {
    "uuid": _ID,
    "date-time": _WHEN,
    "date": "2026-03-02",
    "time": "14:30:00",
    "email": "ada@example.com",
    "uri": "https://hooks.example.com/coachline",
    "duration": "PT5M",
    "ipv4": "192.0.2.10",
}
_MAX_DEPTH = 8


def example_for(
    schema: dict[str, Any], components: dict[str, Any], name: str = "", depth: int = 0
) -> Any:
    """A value valid against ``schema`` (``$ref``s resolve in ``components``, i.e. #/components/schemas)."""
    if "$ref" in schema:
        target = components[schema["$ref"].rsplit("/", 1)[-1]]
        return example_for(target, components, name, depth + 1)
    for key in ("examples",):
        if isinstance(schema.get(key), list) and schema[key]:
            return schema[key][0]
    if "example" in schema:
        return schema["example"]
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    if "properties" in schema:
        return _object(schema, components, depth)
    for combiner in ("anyOf", "oneOf"):
        if combiner in schema:
            options = [o for o in schema[combiner] if o.get("type") != "null"] or schema[combiner]
            return example_for(options[0], components, name, depth + 1)
    if "allOf" in schema:
        return example_for(schema["allOf"][0], components, name, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        return _object(schema, components, depth)
    if kind == "array":
        items = schema.get("items", {})
        count = max(1, schema.get("minItems", 1))
        if schema.get("maxItems") == 0 or depth > _MAX_DEPTH:
            return []
        return [
            example_for(items, components, name.removesuffix("s"), depth + 1) for _ in range(count)
        ]
    if kind == "string":
        return _string(schema, name)
    if kind in ("integer", "number"):
        return _number(schema, name, integer=kind == "integer")
    if kind == "boolean":
        return True
    if kind == "null":
        return None
    return _BY_NAME.get(name, "example")


def _object(schema: dict[str, Any], components: dict[str, Any], depth: int) -> dict[str, Any]:
    if depth > _MAX_DEPTH:
        return {}
    props = schema.get("properties", {})
    out = {key: example_for(sub, components, key, depth + 1) for key, sub in props.items()}
    if not props and isinstance(schema.get("additionalProperties"), dict):
        out = {"key": example_for(schema["additionalProperties"], components, "key", depth + 1)}
    # "one of these fields" rules (a model validator's, in the schema as anyOf/oneOf of required
    # lists): the first choice is filled in; under oneOf the other choices are left out.
    for combiner in ("anyOf", "oneOf"):
        branches = schema.get(combiner, [])
        if branches and all("required" in b for b in branches) and combiner == "oneOf":
            for branch in branches[1:]:
                for key in branch["required"]:
                    if key not in branches[0]["required"]:
                        out.pop(key, None)
    return out


def _string(schema: dict[str, Any], name: str) -> str:
    value = _BY_FORMAT.get(schema.get("format", ""))
    if value is None:
        value = _BY_NAME.get(name)
    if not isinstance(value, str):
        value = name.replace("_", " ") or "example"
    low, high = schema.get("minLength", 0), schema.get("maxLength")
    if len(value) < low:
        value = value + "x" * (low - len(value))
    if high is not None and len(value) > high:
        value = value[:high]
    return value


def _number(schema: dict[str, Any], name: str, *, integer: bool) -> int | float:
    value: float = {
        "value": 25000,
        "amount": 25000,
        "company_size": 250,
        "limit": 50,
        "probability": 0.6,
        "score": 72,
    }.get(name, 1)
    if "minimum" in schema:
        value = max(value, schema["minimum"])
    if "exclusiveMinimum" in schema:
        value = max(value, schema["exclusiveMinimum"] + (1 if integer else 0.5))
    if "maximum" in schema:
        value = min(value, schema["maximum"])
    if "exclusiveMaximum" in schema:
        value = min(value, schema["exclusiveMaximum"] - (1 if integer else 0.5))
    return int(value) if integer else float(value)
