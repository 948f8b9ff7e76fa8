"""In-process measurements: server time of single requests against the benchmark database.

"Server time" here is the wall time of one request through Django's WSGI handler —
the callable gunicorn invokes — from the request's environ to the last byte of its
body and the closing of the response (every middleware, authentication, the view,
rendering, and the request-log write that a real server performs after sending the
response), measured in the benchmark process against the same PostgreSQL database
gunicorn serves. It excludes the network, HTTP parsing and the load generator.
Console pages go through Django's test ``Client`` (for the operator's session).
"""

from __future__ import annotations

import gc
import json
import statistics
import time
import tracemalloc
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.handlers.wsgi import WSGIHandler
from django.db import connection, reset_queries
from django.test import Client, RequestFactory
from django.test.utils import CaptureQueriesContext

from provisioning.access.operator_tokens import operator_token_create, operator_token_revoke
from provisioning.access.operators import operator_create
from provisioning.audit import selectors as audit_selectors
from provisioning.directory.models import Group, Membership, User
from provisioning.oversight.models import PendingOperation, PolicyRule, RuleAction
from provisioning.oversight.rules import policy_rule_create, policy_rule_delete

SCIM = "application/scim+json"
PATCH_OP = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
BULK_REQUEST = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
USER_SCHEMA = "urn:ietf:params:scim:schemas:core:2.0:User"
OPERATOR = "bench-operator"


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Timing:
    """Latencies in milliseconds of repeated runs of one measurement."""

    name: str
    samples: list[float] = field(default_factory=list)
    queries: int | None = None
    extra: dict = field(default_factory=dict)

    def summary(self) -> dict:
        return {
            "n": len(self.samples),
            "p50_ms": round(percentile(self.samples, 50), 2),
            "p95_ms": round(percentile(self.samples, 95), 2),
            "mean_ms": round(statistics.fmean(self.samples), 2) if self.samples else 0.0,
            **({"queries": self.queries} if self.queries is not None else {}),
            **self.extra,
        }


def timed(name: str, action: Callable[[], object], *, repeat: int, warmup: int = 2) -> Timing:
    """Run ``action`` ``warmup`` times unmeasured, then ``repeat`` times; count queries once."""
    for _ in range(warmup):
        action()
    timing = Timing(name)
    with CaptureQueriesContext(connection) as captured:
        action()
    timing.queries = len(captured.captured_queries)
    reset_queries()
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        timing.samples.append((time.perf_counter() - started) * 1000)
    return timing


class InProcess:
    """SCIM and console requests through Django's handler, in this process."""

    def __init__(self, token: str):
        self.handler = WSGIHandler()
        self.factory = RequestFactory(HTTP_AUTHORIZATION=f"Bearer {token}", SERVER_NAME="127.0.0.1")
        self.console = Client()
        operator = get_user_model().objects.filter(username=OPERATOR).first()
        if operator is None:
            operator, _password = operator_create(username=OPERATOR, role="administrator")
        self.console.force_login(operator)
        # The pages are measured, not the sign-in: a bench operator has enrolled no second
        # factor, and this process serves nobody else.
        settings.SCIMGATE_MFA_REQUIRED = False

    def wsgi(self, method: str, path: str, data: str = "") -> tuple[int, int, bytes]:
        """Call the WSGI application as a server does: every chunk read (and sent, were
        there a socket), then ``close()``, which runs the response's closers (the
        request-log write among them). Returns the status, the body's size, and its
        first 64 KiB (a streamed 100,000-member group is never held whole)."""
        environ = self.factory.generic(method, path, data=data, content_type=SCIM).environ
        status: list[int] = []

        def start_response(line: str, headers, exc_info=None):
            status.append(int(line.split(" ", 1)[0]))

        body = self.handler(environ, start_response)
        size, head = 0, b""
        try:
            for chunk in body:
                size += len(chunk)
                if len(head) < 65536:
                    head += chunk[: 65536 - len(head)]
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
        return status[0], size, head

    def request(self, method: str, path: str, body: dict | None = None, *, expect: int = 200, **params):
        data = json.dumps(body) if body is not None else ""
        url = path + (("?" + urlencode(params)) if params else "")
        code, size, head = self.wsgi(method, "/scim/v2" + url, data)
        if code != expect:
            raise RuntimeError(f"{method} {path} answered {code}: {head[:300]!r}")
        return size

    def read(self, path: str, **params) -> dict:
        """A SCIM GET's whole JSON body (200 expected)."""
        return json.loads(self._get(self.factory.get("/scim/v2" + path + "?" + urlencode(params)).environ, path))

    def api(self, path: str, token: str, **params) -> int:
        """A management API GET with an operator token, through the WSGI handler as a
        server calls it; returns the body's size (200 expected)."""
        url = path + (("?" + urlencode(params)) if params else "")
        return len(self._get(self.factory.get(url, HTTP_AUTHORIZATION=f"Bearer {token}").environ, path))

    def _get(self, environ: dict, path: str) -> bytes:
        """The whole body of a GET through the WSGI handler (200 expected)."""
        status: list[int] = []

        def start_response(line: str, headers, exc_info=None):
            status.append(int(line.split(" ", 1)[0]))

        body = self.handler(environ, start_response)
        try:
            data = b"".join(body)
        finally:
            body.close()
        if status[0] != 200:
            raise RuntimeError(f"GET {path} answered {status[0]}: {data[:300]!r}")
        return data

    def page(self, path: str, **params) -> int:
        response = self.console.get(path, params)
        if response.status_code != 200:
            raise RuntimeError(f"GET {path} answered {response.status_code}")
        return len(response.content)

    def create_user(self, prefix: str) -> str:
        body = {"schemas": [USER_SCHEMA], "userName": f"{prefix}-{uuid.uuid4().hex[:12]}@bench.example"}
        code, _size, head = self.wsgi("POST", "/scim/v2/Users", json.dumps(body))
        if code != 201:
            raise RuntimeError(f"POST /Users answered {code}")
        return json.loads(head)["id"]


def group_scaling(client: InProcess, sizes: list[int], *, repeat: int) -> dict:
    """Membership PATCH (add then remove one member) and GET without members, per group size."""
    results: dict = {}
    probe = client.create_user("bench-probe")
    for size in sizes:
        group = Group.objects.filter(display_name=f"bench-scale-{size}").first()
        if group is None:
            continue
        path = f"/Groups/{group.pk}"

        def add(path=path) -> None:
            client.request(
                "PATCH", path,
                {"schemas": [PATCH_OP], "Operations": [{"op": "Add", "path": "members", "value": [{"value": probe}]}]},
                expect=204,
            )

        def remove(path=path) -> None:
            client.request(
                "PATCH", path,
                {"schemas": [PATCH_OP], "Operations": [{"op": "Remove", "path": f'members[value eq "{probe}"]'}]},
                expect=204,
            )

        adds, removes = Timing("add"), Timing("remove")
        for i in range(repeat + 2):
            started = time.perf_counter()
            add()
            elapsed_add = (time.perf_counter() - started) * 1000
            started = time.perf_counter()
            remove()
            elapsed_remove = (time.perf_counter() - started) * 1000
            if i >= 2:  # warm-up
                adds.samples.append(elapsed_add)
                removes.samples.append(elapsed_remove)
        with CaptureQueriesContext(connection) as captured:
            add()
        adds.queries = len(captured.captured_queries)
        remove()
        excluded = timed(
            "get_excluded",
            lambda path=path: client.request("GET", path, excludedAttributes="members"),
            repeat=repeat,
        )
        results[str(size)] = {
            "members": Membership.objects.filter(group=group).count(),
            "patch_add": adds.summary(),
            "patch_remove": removes.summary(),
            "get_excluded_members": excluded.summary(),
        }
    return results


def full_group_get(client: InProcess, size: int, *, repeat: int) -> dict:
    """GET of the whole group (streamed): time, bytes, and peak Python memory growth."""
    group = Group.objects.filter(display_name=f"bench-scale-{size}").first()
    if group is None:
        return {}
    path = f"/Groups/{group.pk}"
    timing = timed("full_get", lambda: client.request("GET", path), repeat=repeat, warmup=1)
    gc.collect()
    tracemalloc.start()
    baseline = tracemalloc.get_traced_memory()[0]
    size_bytes = client.request("GET", path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return {
        **timing.summary(),
        "bytes": size_bytes,
        "peak_memory_growth_mb": round((peak - baseline) / 2**20, 1),
    }


def user_lists(client: InProcess, *, repeat: int) -> dict:
    users = list(User.objects.order_by("created", "id").values_list("user_name", flat=True)[:: max(1, User.objects.count() // 50)][:50])
    names = iter(users * (repeat + 10))
    filter_timing = timed(
        "filter_userName",
        lambda: client.request("GET", "/Users", filter=f'userName eq "{next(names)}"'),
        repeat=repeat,
    )
    deep = timed(
        "deep_page",
        lambda: client.request("GET", "/Users", startIndex=90001, count=100),
        repeat=max(5, repeat // 4),
    )
    return {
        "users": User.objects.count(),
        "filter_userName_eq": filter_timing.summary(),
        "deep_page_90001": deep.summary(),
    }


def cursor_paging(client: InProcess, *, repeat: int, count: int = 100) -> dict:
    """The last page of all users by cursor (RFC 9865) and by index, same rows, same size.

    The last page's cursor is reached by walking every page from an empty cursor (each
    page timed too: keyset pages cost the same at any depth); the index page is the one
    with the same rows (``startIndex`` of the walk's last page).
    """
    walk, cursor, pages, previous = Timing("walk"), "", 0, None
    while True:
        started = time.perf_counter()
        body = client.read("/Users", cursor=cursor, count=count)
        walk.samples.append((time.perf_counter() - started) * 1000)
        pages += 1
        if "nextCursor" not in body:
            break
        previous, cursor = cursor, body["nextCursor"]
    last_ids = [resource["id"] for resource in body["Resources"]]
    start_index = (pages - 1) * count + 1
    index_ids = [r["id"] for r in client.read("/Users", startIndex=start_index, count=count)["Resources"]]
    by_cursor = timed(
        "cursor_last_page",
        lambda: client.request("GET", "/Users", cursor=cursor, count=count),
        repeat=repeat,
    )
    by_index = timed(
        "index_last_page",
        lambda: client.request("GET", "/Users", startIndex=start_index, count=count),
        repeat=repeat,
    )
    return {
        "users": body["totalResults"],
        "count": count,
        "pages": pages,
        "walk_seconds": round(sum(walk.samples) / 1000, 1),
        "walk_page": walk.summary(),
        "cursor_last_page": by_cursor.summary(),
        "index_last_page": by_index.summary() | {"startIndex": start_index},
        "same_rows": last_ids == index_ids,
        "walked_from_start": previous is not None or pages == 1,
    }


def bulk(client: InProcess, operations: int) -> dict:
    """One Bulk request of ``operations`` POST /Users operations."""
    tag = uuid.uuid4().hex[:8]
    body = {
        "schemas": [BULK_REQUEST],
        "Operations": [
            {
                "method": "POST",
                "path": "/Users",
                "bulkId": f"b{i}",
                "data": {"schemas": [USER_SCHEMA], "userName": f"bulk-{tag}-{i}@bench.example", "active": True},
            }
            for i in range(operations)
        ],
    }
    started = time.perf_counter()
    client.request("POST", "/Bulk", body)
    elapsed = (time.perf_counter() - started) * 1000
    return {"operations": operations, "total_ms": round(elapsed, 1), "per_operation_ms": round(elapsed / operations, 2)}


def console_pages(client: InProcess, *, repeat: int) -> dict:
    big = Group.objects.order_by().filter(display_name__startswith="bench-scale-").order_by("-display_name").first()
    sample_user = User.objects.order_by("created").only("id", "family_name").first()
    search = sample_user.family_name if sample_user else "a"
    results = {
        "users_search": timed(
            "users_search", lambda: client.page("/users/", q=search), repeat=repeat
        ).summary()
        | {"q": search},
        "users_search_rare": timed(
            "users_search_rare", lambda: client.page("/users/", q="zz-no-such-user"), repeat=repeat
        ).summary(),
    }
    members = Membership.objects.filter(group=big).order_by("-id").values_list("id", flat=True)
    if big is not None and members[60:61]:
        last = members[60]
        results["group_members_page"] = timed(
            "group_members", lambda: client.page(f"/groups/{big.pk}/"), repeat=repeat
        ).summary() | {"group": big.display_name}
        results["group_members_last_page"] = timed(
            "group_members_last", lambda: client.page(f"/groups/{big.pk}/", after=last), repeat=repeat
        ).summary()
    return results


def audit_search(*, repeat: int, page_size: int = 50) -> dict:
    """The audit log search the console runs: a page of the log (configuration entries
    and directory change records) and its capped count."""
    sample = User.objects.order_by("created").only("id", "family_name", "user_name").first()

    def free_text(text: str) -> Callable[[], object]:
        def run() -> None:
            log = audit_selectors.audit_log(text=text)
            log.page(size=page_size)
            log.count(10_000)

        return run

    results = {
        "entries": audit_selectors.AuditEntry.objects.count(),
        "records": audit_selectors.ChangeRecord.objects.count(),
    }
    for label, text in (
        ("free_text_common", "Engineer"),
        ("free_text_name", sample.family_name if sample else "x"),
        ("free_text_rare", sample.user_name if sample else "x"),
    ):
        results[label] = timed(label, free_text(text), repeat=repeat).summary() | {"text": text}
    if sample is not None:
        results["resource_history_records"] = timed(
            "history",
            lambda: list(audit_selectors.change_records(resource_id=sample.pk)[:page_size]),
            repeat=repeat,
        ).summary()
        results["resource_history_entries"] = timed(
            "history_entries",
            lambda: audit_selectors.audit_log(resource_type="User", resource_id=sample.pk).page(
                size=page_size
            ),
            repeat=repeat,
        ).summary()
    return results


HELD_OPERATIONS = 500


def hold_operations(client: InProcess, count: int = HELD_OPERATIONS) -> int:
    """Make sure ``count`` operations wait in the queue: the synthetic load holds none.

    They are held as an IdP's writes are, through the pipeline: a hold rule on ``title``
    (the only rule while they are sent, deleted after), then one PATCH per user, each
    answered 202. Held operations are never applied, so the directory is unchanged and a
    later run finds them waiting and sends nothing.
    """
    waiting = PendingOperation.objects.filter(status=PendingOperation.Status.PENDING).count()
    if waiting >= count:
        return 0
    operator = get_user_model().objects.get(username=OPERATOR)
    rule = policy_rule_create(
        name=f"bench-hold-{uuid.uuid4().hex[:6]}",
        kind=PolicyRule.Kind.ATTRIBUTE_CHANGE,
        action=RuleAction.HOLD,
        attributes=["title"],
        operator=operator,
    )
    held = 0
    try:
        targets = User.objects.filter(active=True).order_by("pk").values_list("pk", flat=True)
        for pk in targets[: count - waiting]:
            body = {
                "schemas": [PATCH_OP],
                "Operations": [{"op": "replace", "path": "title", "value": f"held {uuid.uuid4().hex[:8]}"}],
            }
            code, _size, head = client.wsgi("PATCH", f"/scim/v2/Users/{pk}", json.dumps(body))
            if code != 202:
                raise RuntimeError(f"PATCH to hold answered {code}: {head[:300]!r}")
            held += 1
    finally:
        policy_rule_delete(rule=rule, operator=operator)
    return held


def api_pages(client: InProcess, *, repeat: int, page_size: int = 50) -> dict:
    """The pending operations queue and a page of the audit log through the management
    API (an operator token, as a script sends it), next to the same pages of the console.
    The queue holds ``HELD_OPERATIONS`` waiting operations (``hold_operations``).

    Each API measurement has its own token (each token has its own rate budget, and the
    throttle's check is part of what is measured); the tokens are revoked afterwards.
    """
    hold_operations(client)
    operator = get_user_model().objects.get(username=OPERATOR)
    cases = {
        "pending_api": ("/api/v1/pending-operations", {"page_size": page_size}),
        "audit_api": ("/api/v1/audit-log", {"page_size": page_size}),
    }
    results: dict = {}
    tokens = []
    try:
        for name, (path, params) in cases.items():
            token, raw = operator_token_create(user=operator, name=f"bench-{name}-{uuid.uuid4().hex[:6]}")
            tokens.append(token)
            results[name] = timed(
                name, lambda path=path, raw=raw, params=params: client.api(path, raw, **params), repeat=repeat
            ).summary()
    finally:
        for token in tokens:
            operator_token_revoke(token=token)
    results["pending_console"] = timed(
        "pending_console", lambda: client.page("/pending/"), repeat=repeat
    ).summary()
    results["audit_console"] = timed("audit_console", lambda: client.page("/audit/"), repeat=repeat).summary()
    results["pending_waiting"] = PendingOperation.objects.filter(
        status=PendingOperation.Status.PENDING
    ).count()
    return results
