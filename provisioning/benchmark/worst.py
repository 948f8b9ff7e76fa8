"""The worst single requests a client can send with the limits at their defaults.

Each case is an adversarial request built from the limits in force (``provisioning.scim.
limits`` and the SCIM settings): a user with every multi-valued attribute full and the
document at its maximum size, the most PATCH operations with value filters on it,
filters the engine cannot look up, the longest paths a body can carry, the deepest
filter, the largest Bulk request, the most members per request, member filters on the
largest group. Each is sent over HTTP to the gunicorn the benchmark runs (a fresh
resource per repetition where it changes one), timed from the first byte sent to the
last byte received, and the audit rows it added are weighed (every column as text) per
change it recorded. Whether a request is accepted or refused (a limit answering 4xx) is
reported with its time: a refusal must be cheap too.
"""

from __future__ import annotations

import json
import statistics
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx
from django.conf import settings
from django.db import connection

from provisioning.audit.models import AuditEntry, ChangeRecord, ChangeSet
from provisioning.directory.models import Group, Membership, User
from provisioning.scim import filters, limits

SCIM = "application/scim+json"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"
GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
AUDIT_TABLES = (ChangeSet, ChangeRecord, AuditEntry)
# The multi-valued attributes of a User and the sub-attributes their values are given.
MULTI_VALUED = {
    "emails": ("value", "type", "display"),
    "phoneNumbers": ("value", "type", "display"),
    "ims": ("value", "type", "display"),
    "photos": ("value", "type", "display"),
    "addresses": ("formatted", "type", "locality"),
    "entitlements": ("value", "type", "display"),
    "roles": ("value", "type", "display"),
    "x509Certificates": ("value", "type", "display"),
}


@dataclass
class Request:
    method: str
    path: str
    body: bytes = b""


@dataclass
class Case:
    name: str
    description: str
    prepare: Callable[[int], Request]  # called with the repetition number, untimed
    samples: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    audit_bytes_per_change: list[int] = field(default_factory=list)
    body_bytes: int = 0
    detail: str = ""

    def summary(self) -> dict:
        return {
            "description": self.description,
            "status": sorted(set(self.statuses)),
            "max_ms": round(max(self.samples), 1) if self.samples else None,
            "p50_ms": round(statistics.median(self.samples), 1) if self.samples else None,
            "request_bytes": self.body_bytes,
            "audit_bytes_per_change": max(self.audit_bytes_per_change, default=0),
            **({"detail": self.detail} if self.detail else {}),
        }


def _json(body: dict) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def _tag() -> str:
    return uuid.uuid4().hex[:10]


# --- Audit weight ------------------------------------------------------------------------


def audit_marks() -> dict:
    return {
        model: model.objects.order_by("-id").values_list("id", flat=True).first() or 0
        for model in AUDIT_TABLES
    }


def audit_added(marks: dict) -> tuple[int, int]:
    """(characters in every column, as text, of the audit rows written since ``marks``;
    change records among them)."""
    total = 0
    with connection.cursor() as cursor:
        for model in AUDIT_TABLES:
            text = " + ".join(
                f"COALESCE(LENGTH(CAST({connection.ops.quote_name(f.column)} AS TEXT)), 0)"
                for f in model._meta.concrete_fields
            )
            table = connection.ops.quote_name(model._meta.db_table)
            cursor.execute(
                # Table and column names are the models' own, quoted; the mark is a parameter.
                f"SELECT COALESCE(SUM({text}), 0) FROM {table} WHERE id > %s",  # noqa: S608
                [marks[model]],
            )
            total += cursor.fetchone()[0]
    records = ChangeRecord.objects.filter(id__gt=marks[ChangeRecord]).count()
    return total, records


# --- Documents at the limits ------------------------------------------------------------------


def max_user(tag: str, variant: str = "a") -> dict:
    """A user with every multi-valued attribute at its limit and the document as close to
    the size limit as values of one length allow."""
    count = limits.max_multi_values()
    budget = limits.max_document_bytes() - 1024

    def build(pad: int) -> dict:
        document = {"userName": f"worst-{tag}@bench.example", "title": "Worst case"}
        for name, subs in MULTI_VALUED.items():
            document[name] = [
                {
                    subs[0]: f"{variant}{i}-{name}-{tag}-" + "v" * pad,
                    subs[1]: "work",
                    subs[2]: "d" * pad,
                }
                for i in range(count)
            ]
        return document

    key = (count, budget, len(tag), len(variant))
    if key not in _PADS:
        low, high = 0, 4096
        while low < high:
            middle = (low + high + 1) // 2
            if limits.document_size(build(middle)) <= budget:
                low = middle
            else:
                high = middle - 1
        _PADS[key] = low
    return {"schemas": [USER], **build(_PADS[key])}


_PADS: dict[tuple, int] = {}
FULL_USERS = "worst-full-"


def ensure_full_users(count: int) -> None:
    """``count`` full users named ``worst-full-…``, made directly once and kept for later
    runs (a page of them is a case; making them through the API would take minutes)."""
    from django.utils import timezone

    from provisioning.scim import resources
    from provisioning.scim.schema import USER_SCHEMA

    existing = User.objects.filter(user_name__startswith=FULL_USERS).count()
    now = timezone.now()
    for start in range(existing, count, 100):
        User.objects.bulk_create(
            User(
                **resources.user_fields(
                    resources.clean_document(USER_SCHEMA, max_user(f"full-{n:06d}"))
                ),
                created=now,
                last_modified=now,
            )
            for n in range(start, min(count, start + 100))
        )


def deepest_filter() -> str:
    """The longest, most nested filter the parser accepts: ``not (`` as deep as allowed
    around substring comparisons (no index serves them; ``emails.value`` is a subquery
    per user), up to the length limit."""
    depth = filters.MAX_DEPTH
    head, tail = "not (" * (depth - 1) + "(", ")" * depth
    comparisons, n = [], 0
    while True:
        candidate = f'displayName co "z{n}q" or emails.value co "z{n}q"'
        text = head + " or ".join([*comparisons, candidate]) + tail
        if len(text) > filters.MAX_FILTER_LENGTH:
            break
        comparisons.append(candidate)
        n += 1
    return head + " or ".join(comparisons) + tail


# --- The cases --------------------------------------------------------------------------


class Worst:
    """Builds the cases against one server and runs them."""

    def __init__(self, client: httpx.Client, log: Callable[[str], None]):
        self.client = client
        self.log = log
        self.created_users: list[str] = []
        self.created_groups: list[str] = []
        self.max_body = settings.DATA_UPLOAD_MAX_MEMORY_SIZE

    def send(self, request: Request) -> httpx.Response:
        headers = {"Content-Type": SCIM} if request.body else {}
        return self.client.request(request.method, request.path, content=request.body, headers=headers)

    def create_user(self, body: dict) -> dict:
        response = self.send(Request("POST", "/Users", _json(body)))
        if response.status_code != 201:
            raise RuntimeError(f"POST /Users answered {response.status_code}: {response.text[:300]}")
        document = response.json()
        self.created_users.append(document["id"])
        return document

    def create_group(self, members: list[str]) -> str:
        body = {"schemas": [GROUP], "displayName": f"worst-{_tag()}", "members": [{"value": m} for m in members]}
        response = self.send(Request("POST", "/Groups", _json(body)))
        if response.status_code != 201:
            raise RuntimeError(f"POST /Groups answered {response.status_code}: {response.text[:300]}")
        group_id = response.json()["id"]
        self.created_groups.append(group_id)
        return group_id

    def cases(self) -> list[Case]:
        operations = limits.max_patch_operations()
        members = limits.max_members_per_request()
        bulk_operations = settings.SCIM["BULK_MAX_OPERATIONS"]
        bulk_payload = settings.SCIM["BULK_MAX_PAYLOAD_SIZE"]
        spare_users = [
            str(pk)
            for pk in User.objects.order_by("created", "id").values_list("pk", flat=True)[: 2 * members]
        ]

        def full_user(_: int) -> Request:
            return Request("POST", "/Users", _json(max_user(_tag())))

        def user_path(variant: str = "a") -> tuple[str, dict]:
            document = self.create_user(max_user(_tag(), variant))
            return f"/Users/{document['id']}", document

        def patch(path: str, ops: list[dict]) -> Request:
            return Request("PATCH", path, _json({"schemas": [PATCH], "Operations": ops}))

        def eq_filters(_: int) -> Request:
            path, document = user_path()
            values = [e["value"] for e in document["emails"]]
            ops = [
                {"op": "replace", "path": f'emails[value eq "{values[i % len(values)]}"].type', "value": f"t{i}"}
                for i in range(operations)
            ]
            return patch(path, ops)

        def scan_filters(_: int) -> Request:
            path, document = user_path()
            values = [e["value"] for e in document["emails"]]
            ops = [
                {"op": "replace", "path": f'emails[value co "{values[i % len(values)][:12]}"].display', "value": f"d{i}"}
                for i in range(operations)
            ]
            return patch(path, ops)

        def all_values(_: int) -> Request:
            path, _document = user_path()
            return patch(path, [{"op": "replace", "path": "emails.type", "value": f"t{i}"} for i in range(operations)])

        def long_paths(_: int) -> Request:
            path, document = user_path()
            target = document["emails"][-1]["value"]
            condition = ""
            n = 0
            while True:
                more = f'value eq "nobody{n}@bench.example" or '
                if len(condition) + len(more) + len(target) + 40 > filters.MAX_FILTER_LENGTH:
                    break
                condition += more
                n += 1
            op = {"op": "replace", "path": f'emails[{condition}value eq "{target}"].display', "value": "x"}
            count = min(operations, (self.max_body - 200) // (len(json.dumps(op)) + 1))
            return patch(path, [op] * count)

        def replace_lists(_: int) -> Request:
            path, _document = user_path()
            fresh = max_user(_tag(), "b")
            value = {name: fresh[name] for name in MULTI_VALUED}
            return patch(path, [{"op": "replace", "value": value}])

        def put_user(_: int) -> Request:
            path, document = user_path()
            fresh = max_user(_tag(), "b")
            fresh["userName"] = document["userName"]
            return Request("PUT", path, _json(fresh))

        def title_on_full_user(_: int) -> Request:
            path, _document = user_path()
            return patch(path, [{"op": "replace", "path": "title", "value": f"Title {_tag()}"}])

        def get_full_user(_: int) -> Request:
            path, _document = user_path()
            return Request("GET", path)

        deepest = deepest_filter()

        def filter_users(_: int) -> Request:
            return Request("GET", "/Users?" + str(httpx.QueryParams({"filter": deepest, "count": 1000})))

        def search_root(_: int) -> Request:
            body = {"schemas": [SEARCH], "filter": deepest, "count": 1000}
            return Request("POST", "/.search", _json(body))

        def bulk_creates(_: int) -> Request:
            tag = _tag()
            ops = [
                {
                    "method": "POST",
                    "path": "/Users",
                    "bulkId": f"b{i}",
                    "data": {"schemas": [USER], "userName": f"worst-bulk-{tag}-{i}@bench.example", "title": ""},
                }
                for i in range(bulk_operations)
            ]
            spare = bulk_payload - 1024 - len(_json({"schemas": [BULK], "Operations": ops}))
            for op in ops:  # the payload filled with titles
                op["data"]["title"] = "t" * max(1, spare // bulk_operations)
            return Request("POST", "/Bulk", _json({"schemas": [BULK], "Operations": ops}))

        def bulk_patches(_: int) -> Request:
            path, document = user_path()
            values = [e["value"] for e in document["emails"]]
            per = max(1, operations // bulk_operations)
            ops = [
                {
                    "method": "PATCH",
                    "path": path,
                    "data": {
                        "schemas": [PATCH],
                        "Operations": [
                            {"op": "replace", "path": f'emails[value eq "{values[(b * per + i) % len(values)]}"].type', "value": f"t{b}-{i}"}
                            for i in range(per)
                        ],
                    },
                }
                for b in range(bulk_operations)
            ]
            return Request("POST", "/Bulk", _json({"schemas": [BULK], "Operations": ops}))

        def add_members(_: int) -> Request:
            group = self.create_group([])
            value = [{"value": m} for m in spare_users[:members]]
            return patch(f"/Groups/{group}", [{"op": "add", "path": "members", "value": value}])

        def replace_members(_: int) -> Request:
            group = self.create_group(spare_users[:members])
            body = {
                "schemas": [GROUP],
                "displayName": f"worst-{_tag()}",
                "members": [{"value": m} for m in spare_users[members : 2 * members]],
            }
            return Request("PUT", f"/Groups/{group}", _json(body))

        def member_operations(_: int) -> Request:
            group = self.create_group([])
            count = min(operations, members)
            return patch(
                f"/Groups/{group}",
                [{"op": "add", "path": "members", "value": [{"value": m}]} for m in spare_users[:count]],
            )

        largest = (
            Group.objects.filter(display_name__startswith="bench-scale-")
            .order_by("-display_name")
            .values_list("pk", "display_name")
            .first()
        )

        def member_scans(_: int) -> Request:
            group_id = largest[0]
            size = Membership.objects.filter(group_id=group_id).count()
            # What the work limit leaves after the write itself, its paths and its delta.
            room = limits.max_request_work() - limits.RESOURCE_WRITE - 10_000
            fit = room // max(1, size * limits.MEMBER_ROW)
            ops = [{"op": "remove", "path": f'members[display co "no such member {n}"]'} for n in range(max(1, fit))]
            return patch(f"/Groups/{group_id}", ops)

        page = settings.SCIM["MAX_RESULTS"]

        def list_full_users(_: int) -> Request:
            ensure_full_users(page)
            query = httpx.QueryParams({"filter": f'userName sw "{FULL_USERS}"', "count": page})
            return Request("GET", f"/Users?{query}")

        def delete_large_group(_: int) -> Request:
            """A group as large as the largest scaling group, made directly (untimed)."""
            from django.utils import timezone

            size = Membership.objects.filter(group_id=largest[0]).count()
            now = timezone.now()
            group = Group.objects.create(display_name=f"worst-{_tag()}", created=now, last_modified=now)
            Membership.objects.bulk_create(
                (
                    Membership(group=group, user_id=user_id)
                    for user_id in User.objects.order_by("pk").values_list("pk", flat=True)[:size].iterator()
                ),
                batch_size=5_000,
            )
            return Request("DELETE", f"/Groups/{group.pk}")

        def oversized_body(_: int) -> Request:
            body = {"schemas": [USER], "userName": f"worst-{_tag()}", "title": "t" * (self.max_body - 200)}
            return Request("POST", "/Users", _json(body))

        cases = [
            Case("create_full_user", f"POST a user with {limits.max_multi_values()} values in each of its 8 multi-valued attributes, document at the size limit", full_user),
            Case("patch_eq_filters", f"PATCH {operations} operations emails[value eq ...].type on a full user", eq_filters),
            Case("patch_scan_filters", f"PATCH {operations} operations emails[value co ...].display (scanned) on a full user", scan_filters),
            Case("patch_all_values", f"PATCH {operations} operations emails.type (writes every email) on a full user", all_values),
            Case("patch_longest_paths", "PATCH as many value-filter paths of the maximum filter length as the body limit carries", long_paths),
            Case("patch_replace_lists", "PATCH replacing every multi-valued attribute of a full user with other full lists", replace_lists),
            Case("put_full_user", "PUT a full user with every value different", put_user),
            Case("patch_title_full_user", "PATCH title on a full user (an ordinary change on the largest resource)", title_on_full_user),
            Case("get_full_user", "GET a full user", get_full_user),
            Case("list_full_users", f"GET a page of {page} full users (the most a page holds)", list_full_users),
            Case("filter_deepest", f"GET /Users with a {len(deepest)}-character filter nested {filters.MAX_DEPTH} deep (substring comparisons, unindexed), count=1000", filter_users),
            Case("search_deepest", "POST /.search (users and groups) with the same filter", search_root),
            Case("bulk_creates", f"Bulk of {bulk_operations} POST /Users filling the {bulk_payload}-byte payload", bulk_creates),
            Case("bulk_patches", f"Bulk of {bulk_operations} PATCH operations sharing {operations} value-filter operations on a full user", bulk_patches),
            Case("group_add_members", f"PATCH adding {members} members to a group in one operation", add_members),
            Case("group_replace_members", f"PUT a group of {members} members with {members} others", replace_members),
            Case("group_member_operations", f"PATCH with {min(operations, members)} operations adding one member each", member_operations),
            Case("oversized_body", f"POST /Users with a {self.max_body}-byte body (refused)", oversized_body),
        ]
        if largest is not None:
            cases[-1:-1] = [
                Case("group_member_scans", f"PATCH removing by member filters other than value eq on {largest[1]} (each reads every membership), as many as the work limit allows", member_scans),
                Case("delete_large_group", f"DELETE a group with as many members as {largest[1]} (its restore snapshot keeps every member)", delete_large_group),
            ]
        return cases

    def run(self, case: Case, repeat: int) -> None:
        for n in range(repeat):
            request = case.prepare(n)
            case.body_bytes = len(request.body)
            marks = audit_marks()
            started = time.perf_counter()
            response = self.send(request)
            response.read()
            case.samples.append((time.perf_counter() - started) * 1000)
            case.statuses.append(response.status_code)
            if response.status_code >= 400 and not case.detail:
                try:
                    case.detail = str(response.json().get("detail", ""))[:200]
                except ValueError:
                    case.detail = response.text[:200]
            if response.status_code == 201 and request.path == "/Users":
                self.created_users.append(response.json()["id"])
            if request.path == "/Bulk":
                for result in response.json().get("Operations", []):
                    location = result.get("location") or ""
                    if result.get("method") == "POST" and "/Users/" in location:
                        self.created_users.append(location.rsplit("/", 1)[-1])
            total, records = audit_added(marks)
            case.audit_bytes_per_change.append(total // max(1, records))

    def clean_up(self) -> None:
        """Delete what the cases created (untimed), through the API like anything else."""
        for group_id in self.created_groups:
            self.send(Request("DELETE", f"/Groups/{group_id}"))
        for user_id in self.created_users:
            self.send(Request("DELETE", f"/Users/{user_id}"))


def worst_requests(
    base: str, token: str, *, repeat: int = 3, log=print, transport: httpx.BaseTransport | None = None
) -> dict:
    """Run every case ``repeat`` times against the server at ``base``; the slowest and the
    heaviest audit trail per change are the figures the report checks. ``transport``
    replaces the network (the tests call the WSGI application in process)."""
    headers = {"Authorization": f"Bearer {token}", "Accept": SCIM}
    with httpx.Client(
        base_url=f"{base}/scim/v2", headers=headers, timeout=300, transport=transport
    ) as client:
        worst = Worst(client, log)
        cases = worst.cases()
        try:
            for case in cases:
                log(f"  worst case: {case.name}")
                worst.run(case, repeat)
        finally:
            worst.clean_up()
    summaries = {case.name: case.summary() for case in cases}
    slowest = max(summaries, key=lambda name: summaries[name]["max_ms"] or 0)
    heaviest = max(summaries, key=lambda name: summaries[name]["audit_bytes_per_change"])
    return {
        "limits": {
            "multi_values": limits.max_multi_values(),
            "members_per_request": limits.max_members_per_request(),
            "patch_operations": limits.max_patch_operations(),
            "request_work": limits.max_request_work(),
            "document_bytes": limits.max_document_bytes(),
            "bulk_operations": settings.SCIM["BULK_MAX_OPERATIONS"],
            "bulk_payload_bytes": settings.SCIM["BULK_MAX_PAYLOAD_SIZE"],
            "body_bytes": settings.DATA_UPLOAD_MAX_MEMORY_SIZE,
        },
        "repeat": repeat,
        "cases": summaries,
        "slowest": {"case": slowest, "max_ms": summaries[slowest]["max_ms"]},
        "heaviest_audit": {
            "case": heaviest,
            "audit_bytes_per_change": summaries[heaviest]["audit_bytes_per_change"],
        },
        "title_patch_audit_bytes": summaries["patch_title_full_user"]["audit_bytes_per_change"],
    }
