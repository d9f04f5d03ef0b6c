"""The API's request and response bodies (pydantic), one module per resource; the OpenAPI document is generated from these."""
