"""The management API (``/api/v1/``): REST over the services and selectors the console
calls, for operators' scripts.

Every endpoint is an ``ApiView`` (``base``): operator API tokens or the console session
(CSRF enforced), the operator's console role, per-token rate limits, one error body,
cursor pagination; changing endpoints add ``Idempotency-Key`` (``idempotency``) and
``If-Match`` (``preconditions``). The OpenAPI 3.1 schema is generated from the views
(drf-spectacular, ``schema``).
"""
