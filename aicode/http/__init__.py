"""HTTP hygiene shared by every route: input checks, security headers, URL redaction, the OpenAPI surface."""

__all__: list[str] = []
