"""Streamed rendering of a full group: members are read with a server-side cursor and
written out in chunks, so a 100,000-member group never exists in memory as one list.

Used by ``GET /Groups/{id}`` when the whole document is asked for (no ``attributes`` /
``excludedAttributes``); projections keep the in-memory path, which is bounded by what
they select.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator

from django.http import StreamingHttpResponse

from provisioning.access.authorization import EVERYTHING, ReadScope
from provisioning.directory import selectors
from provisioning.directory.models import Group

from . import resources
from .schema import GROUP_SCHEMA

# Members rendered per chunk of output (and read per round trip of the cursor).
CHUNK = 2000


def _dumps(value) -> str:
    # As DRF's JSONRenderer renders SCIM responses: compact, UTF-8.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def group_document_chunks(
    group: Group, base_url: str, *, chunk: int = CHUNK, scope: ReadScope = EVERYTHING
) -> Iterator[bytes]:
    """The group's SCIM document as JSON, members streamed in membership (insertion) order;
    only the members ``scope`` may read."""
    placeholder = f"members-{uuid.uuid4().hex}"
    document = resources.group_document(group, base_url, members=placeholder)  # type: ignore[arg-type]
    # The default projection: registered extension attributes returned only on request go.
    document = resources.project(GROUP_SCHEMA, document, [], [])
    head, tail = _dumps(document).split(_dumps(placeholder), 1)
    yield (head + "[").encode()
    rows = selectors.member_rows([group.pk], scope).iterator(chunk_size=chunk)
    buffer: list[str] = []
    first = True
    for _group_id, user_id, member_group_id, display in rows:
        entry = resources.member_entry(
            user_id or member_group_id, member_group_id is not None, display, base_url
        )
        buffer.append(_dumps(entry))
        if len(buffer) >= chunk:
            yield (("" if first else ",") + ",".join(buffer)).encode()
            first, buffer = False, []
    if buffer:
        yield (("" if first else ",") + ",".join(buffer)).encode()
    yield ("]" + tail).encode()


def streamed_group_response(
    group: Group, base_url: str, content_type: str, scope: ReadScope = EVERYTHING
) -> StreamingHttpResponse:
    response = StreamingHttpResponse(
        group_document_chunks(group, base_url, scope=scope), content_type=content_type
    )
    response["ETag"] = group.etag
    return response
