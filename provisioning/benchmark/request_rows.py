"""The request-log rows of one synthetic write: an IdP reads before it writes, so a GET
(a filter by userName, or the group without members), then the write itself, with
bodies redacted as the middleware stores them.
"""

from __future__ import annotations

import json
import random
import uuid
from datetime import datetime, timedelta
from urllib.parse import urlencode

from provisioning.audit.middleware import SCIM_PREFIX
from provisioning.audit.models import RequestLog
from provisioning.audit.redaction import redact_body_text, redact_query
from provisioning.directory.changes import Change
from provisioning.directory.models import User
from provisioning.scim import resources

from .history import IDP_ADDRESS, Event, ReplayContext

LIST_RESPONSE = "urn:ietf:params:scim:api:messages:2.0:ListResponse"
BASE_URL = "http://127.0.0.1:8000/scim/v2"


def request_rows(
    context: ReplayContext,
    event: Event,
    rng: random.Random,
    change: Change,
    *,
    method: str,
    path: str,
    raw: bytes,
    status: int,
    correlation_id: uuid.UUID,
    read_first: bool = True,
) -> list[RequestLog]:
    """An IdP reads before it writes: the GET (unless ``read_first`` is false), then the write."""
    resource = change.resource
    rows = []
    if read_first:
        if isinstance(resource, User):
            query = urlencode({"filter": f'userName eq "{resource.user_name}"'})
            listing = {
                "schemas": [LIST_RESPONSE],
                "totalResults": 1,
                "startIndex": 1,
                "itemsPerPage": 1,
                "Resources": [resources.user_document(resource, BASE_URL)],
            }
            get_path = f"{SCIM_PREFIX}Users"
        else:
            listing = resources.group_document(resource, BASE_URL)
            get_path, query = f"{SCIM_PREFIX}Groups/{resource.pk}", "excludedAttributes=members"
        rows.append(
            _request_row(
                context, rng, event.at - timedelta(milliseconds=rng.uniform(40, 400)),
                uuid.UUID(int=rng.getrandbits(128), version=4), "GET", get_path, query, b"", 200,
                json.dumps(listing, separators=(",", ":")).encode(),
            )
        )
    if status == 204:
        response = b""
    elif isinstance(resource, User):
        response = json.dumps(resources.user_document(resource, BASE_URL), separators=(",", ":")).encode()
    else:
        response = json.dumps(resources.group_document(resource, BASE_URL, []), separators=(",", ":")).encode()
    rows.append(_request_row(context, rng, event.at, correlation_id, method, path, "", raw, status, response))
    return rows


def _request_row(
    context: ReplayContext, rng: random.Random, at: datetime, cid: uuid.UUID, method: str, path: str,
    query: str, body: bytes, status: int, response: bytes,
) -> RequestLog:
    latency = round(rng.uniform(2.0, 30.0), 3)
    request_text = redact_body_text(body)
    response_text = redact_body_text(response)
    return RequestLog(
        timestamp=at + timedelta(milliseconds=latency),
        correlation_id=cid,
        scim_client_id=context.client_id,
        token_prefix=context.token_prefix,
        method=method,
        path=path,
        query=redact_query(query),
        status=status,
        latency_ms=latency,
        remote_addr=IDP_ADDRESS,
        request_body=request_text,
        request_size=len(body),
        response_body=response_text,
        response_size=len(response),
    )
