"""``Idempotency-Key`` for changing requests (IETF draft-ietf-httpapi-idempotency-key-header).

A client sends a unique key with a changing request; a retry with the same key and the
same request (method, path, body) is answered with the first successful response, marked
``Idempotent-Replayed: true``, and changes nothing again. As the draft (§2.7) says:

- the same key with a different request: 422 ``idempotency_key_reused``;
- the same key while its first request is still in progress: 409 ``idempotency_key_in_use``.

Keys belong to the operator (any of their tokens, or their session) and are kept
``SCIMGATE_API_IDEMPOTENCY_HOURS``. A key is at most 255 visible ASCII characters, sent
bare or as a quoted string (the draft's Structured Field form, ``"8e03..."``). Only
successful answers are kept: after a refusal the key is free again, and a retry is decided
afresh. A claim left by a request that died is taken over after CLAIM_LEASE.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable
from datetime import timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.exceptions import ValidationError
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response

from .errors import IdempotencyKeyInUse, IdempotencyKeyReused
from .models import IdempotencyRecord

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
# A request still without an answer after this long is taken to have died.
CLAIM_LEASE = timedelta(minutes=2)
_KEY = re.compile(r'"?([\x21\x23-\x7e]{1,255})"?')


def _key(request) -> str | None:
    header = request.headers.get(HEADER)
    if header is None:
        return None
    match = _KEY.fullmatch(header.strip())
    if match is None or (header.strip().startswith('"') != header.strip().endswith('"')):
        raise ValidationError(
            {HEADER: ["An Idempotency-Key is 1 to 255 visible ASCII characters (a UUID, say)."]}
        )
    return match[1]


def _request_hash(request) -> str:
    digest = hashlib.sha256()
    for part in (request.method, request.path, request.META.get("QUERY_STRING", "")):
        digest.update(part.encode() + b"\0")
    digest.update(request.body)
    return digest.hexdigest()


def _replay(record: IdempotencyRecord) -> Response:
    response = Response(record.body, status=record.status)
    response[REPLAYED_HEADER] = "true"
    if record.etag:
        response["ETag"] = record.etag
    return response


def _claim(request, key: str, request_hash: str) -> IdempotencyRecord | Response:
    """A new claim on ``key``, or the stored answer to replay; raises 409 or 422."""
    now = timezone.now()
    lifetime = timedelta(hours=settings.SCIMGATE_API_IDEMPOTENCY_HOURS)
    fields = {
        "method": request.method,
        "path": request.path[:2048],
        "request_hash": request_hash,
        "status": None,
        "body": None,
        "etag": "",
        "created_at": now,
        "expires_at": now + lifetime,
    }
    with transaction.atomic():
        IdempotencyRecord.objects.filter(operator=request.user, expires_at__lte=now).delete()
        try:
            with transaction.atomic():
                return IdempotencyRecord.objects.create(operator=request.user, key=key, **fields)
        except IntegrityError:
            pass
        record = IdempotencyRecord.objects.select_for_update().get(operator=request.user, key=key)
        if record.request_hash != request_hash:
            raise IdempotencyKeyReused()
        if record.status is not None:
            return _replay(record)
        if record.created_at > now - CLAIM_LEASE:
            raise IdempotencyKeyInUse()
        for name, value in fields.items():  # the first request died: take its claim over
            setattr(record, name, value)
        record.save()
        return record


def idempotent(handle: Callable[[], Response], request) -> Response:
    """Run ``handle`` once per ``Idempotency-Key`` (none sent: just run it)."""
    key = _key(request)
    if key is None:
        return handle()
    claimed = _claim(request, key, _request_hash(request))
    if isinstance(claimed, Response):
        return claimed
    try:
        response = handle()
    except BaseException:
        IdempotencyRecord.objects.filter(pk=claimed.pk).delete()
        raise
    if 200 <= response.status_code < 300:
        claimed.status = response.status_code
        # What the client received, as JSON (a Decimal in the data is a JSON number there).
        claimed.body = json.loads(JSONRenderer().render(response.data))
        claimed.etag = response.get("ETag", "")
        claimed.save(update_fields=["status", "body", "etag"])
    else:
        IdempotencyRecord.objects.filter(pk=claimed.pk).delete()
    return response
