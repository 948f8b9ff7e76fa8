"""The printed table: every figure of a run, and each target (issues 7 and 12) met or missed."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Check:
    label: str
    value: float | None
    limit: float
    unit: str

    @property
    def met(self) -> bool | None:
        return None if self.value is None else self.value <= self.limit


def _get(data: dict, *path, default=None):
    for key in path:
        if not isinstance(data, dict) or key not in data:
            return default
        data = data[key]
    return data


def targets(results: dict) -> list[Check]:
    """Each target as ``value <= limit`` (throughput is checked as its inverse)."""
    scaling = results.get("group_scaling", {})
    sizes = sorted(scaling, key=int)
    small, large = (scaling[sizes[0]], scaling[sizes[-1]]) if sizes else ({}, {})

    def ratio(metric: str) -> float | None:
        low, high = _get(small, metric, "p50_ms"), _get(large, metric, "p50_ms")
        return round(high / low, 2) if low and high is not None else None

    rps = _get(results, "idp_mix", "rps")
    share = _get(results, "floor_share", "median")
    return [
        Check("IdP mix: requests/s (at least 250)", None if rps is None else round(250 / max(rps, 0.1), 2), 1.0, "x of 250/s needed"),
        Check("IdP mix: p99", _get(results, "idp_mix", "p99_ms"), 150, "ms"),
        Check("IdP mix: share of the framework floor (at least 0.35; median of pairs)", None if share is None else round(0.35 / max(share, 0.001), 2), 1.0, "x of the share needed"),
        Check(f"PATCH add member: {sizes[-1] if sizes else '?'} vs {sizes[0] if sizes else '?'} members", ratio("patch_add"), 1.5, "x"),
        Check("PATCH remove member: largest vs smallest group", ratio("patch_remove"), 1.5, "x"),
        Check("GET excludedAttributes=members: largest vs smallest", ratio("get_excluded_members"), 1.5, "x"),
        Check("Full GET of the largest group (HTTP, streamed)", _get(results, "full_group_get_http", "total_p50_ms"), 2000, "ms"),
        Check("Full GET: peak memory growth", _get(results, "full_group_get", "peak_memory_growth_mb"), 100, "MB"),
        Check("userName eq filter p50", _get(results, "user_lists", "filter_userName_eq", "p50_ms"), 5, "ms"),
        Check("Deep page startIndex=90001 p50", _get(results, "user_lists", "deep_page_90001", "p50_ms"), 50, "ms"),
        Check("JSON filter title eq, count=100 p50", _get(results, "json_filters", "filter_title_eq", "p50_ms"), 300, "ms"),
        Check("JSON sortBy=title, count=100 p50", _get(results, "json_filters", "sort_title", "p50_ms"), 300, "ms"),
        Check("JSON filter addresses.locality eq, count=100 p50", _get(results, "json_filters", "filter_locality_eq", "p50_ms"), 300, "ms"),
        Check("Last page of all users by cursor p50", _get(results, "cursor_paging", "cursor_last_page", "p50_ms"), 20, "ms"),
        Check("Audit free text p50 (common term)", _get(results, "audit_search", "free_text_common", "p50_ms"), 200, "ms"),
        Check("Audit free text p50 (a surname)", _get(results, "audit_search", "free_text_name", "p50_ms"), 200, "ms"),
        Check("Audit free text p50 (a userName)", _get(results, "audit_search", "free_text_rare", "p50_ms"), 200, "ms"),
        Check("Per-resource history p50", _get(results, "audit_search", "resource_history_records", "p50_ms"), 20, "ms"),
        Check("Console users search p50", _get(results, "console", "users_search", "p50_ms"), 150, "ms"),
        Check("Audit + request log overhead on a write (throughput)", _get(results, "write_overhead", "throughput_overhead_pct"), 25, "%"),
        Check("Worst single request, limits at their defaults (HTTP)", _get(results, "worst_requests", "slowest", "max_ms"), 2000, "ms"),
        Check("Audit bytes of a title PATCH on a full user", _get(results, "worst_requests", "title_patch_audit_bytes"), 4096, "bytes"),
        Check("SCIM read with an OAuth access token vs a static token (p50)", _get(results, "oauth", "read_overhead_p50_pct"), 5, "%"),
        Check("PATCH user throughput, one active event stream vs none", _get(results, "events", "patch_user", "stream_throughput_drop_pct"), 10, "%"),
        Check("Membership change with a stream: largest vs smallest group (p50)", _get(results, "events", "membership_with_stream", "largest_to_smallest_add_p50"), 1.5, "x"),
        Check("Event delivery lag at 100 changes/s (push, p99)", _get(results, "event_lag", "p99_ms"), 2000, "ms"),
    ]


def _row(cells: list[str], widths: list[int]) -> str:
    return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"


def table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows, strict=True)]
    lines = [_row(header, widths), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    lines += [_row([str(c) for c in row], widths) for row in rows]
    return "\n".join(lines)


def _worst_section(worst: dict) -> str:
    limits = worst.get("limits", {})
    lines = [
        f"\nWorst single requests (HTTP against gunicorn, each sent {worst.get('repeat')} times; "
        f"limits: {limits.get('multi_values')} values per multi-valued attribute, "
        f"{limits.get('patch_operations')} PATCH operations and {limits.get('members_per_request')} "
        f"members per request, work {limits.get('request_work')} units per request, "
        f"{limits.get('document_bytes')} bytes per resource, Bulk {limits.get('bulk_operations')} "
        f"operations / {limits.get('bulk_payload_bytes')} bytes, body {limits.get('body_bytes')} bytes)\n"
    ]
    rows = [
        [
            name,
            "/".join(str(code) for code in case["status"]),
            str(case["max_ms"]),
            str(case["p50_ms"]),
            f"{case['request_bytes']:,}",
            f"{case['audit_bytes_per_change']:,}",
            case["description"],
        ]
        for name, case in worst.get("cases", {}).items()
    ]
    lines.append(
        table(["case", "status", "max ms", "p50 ms", "request bytes", "audit bytes / change", "request"], rows)
    )
    slowest, heaviest = worst.get("slowest", {}), worst.get("heaviest_audit", {})
    lines.append(
        f"\nSlowest: {slowest.get('case')} ({slowest.get('max_ms')} ms). Heaviest audit trail per "
        f"change: {heaviest.get('case')} ({heaviest.get('audit_bytes_per_change'):,} bytes); a title "
        f"PATCH on a full user adds {worst.get('title_patch_audit_bytes'):,} bytes."
    )
    return "\n".join(lines)


def render(results: dict) -> str:
    """Markdown tables (they paste into the README as they are)."""
    out: list[str] = []
    m = results.get("machine", {})
    out.append(
        f"Machine: {m.get('cpus')} CPUs ({m.get('cpu_model')}), {m.get('memory_gb')} GB RAM, "
        f"PostgreSQL {m.get('postgresql')}, Python {m.get('python')}; "
        f"gunicorn {results.get('settings', {}).get('gunicorn_workers')} workers x "
        f"{results.get('settings', {}).get('gunicorn_threads')} threads, "
        f"{results.get('settings', {}).get('concurrency')} concurrent clients"
    )
    load = results.get("load", {})
    out.append(
        "Synthetic data: " + ("reused" if load.get("reused") else f"loaded in {load.get('seconds')} s")
        + f"; whole run {results.get('seconds')} s"
    )
    mix = results.get("idp_mix", {})
    floor = results.get("floor", {})
    rows = [
        [op, str(v["requests"]), str(v["errors"]), f"{v['p50_ms']}", f"{v['p95_ms']}", f"{v['p99_ms']}"]
        for op, v in mix.get("operations", {}).items()
    ]
    rows.append(["**all (IdP mix)**", str(mix.get("requests")), str(mix.get("errors")),
                 str(mix.get("p50_ms")), str(mix.get("p95_ms")), str(mix.get("p99_ms"))])
    rows.append(["framework floor", str(floor.get("requests")), str(floor.get("errors")),
                 str(floor.get("p50_ms")), str(floor.get("p95_ms")), str(floor.get("p99_ms"))])
    out.append(
        f"\nHTTP (load generator in its own process): IdP mix {mix.get('rps')} req/s sustained, "
        f"framework floor {floor.get('rps')} req/s (floor/mix = {floor.get('ratio_floor_to_mix')})\n"
    )
    out.append(table(["operation", "requests", "errors", "p50 ms", "p95 ms", "p99 ms"], rows))
    share = results.get("floor_share")
    if share:
        out.append(
            "\nShare of the floor (mix / floor req/s, pairs of rounds run back to back): "
            + ", ".join(f"{p['mix_rps']} / {p['floor_rps']} = {p['share']}" for p in share["pairs"])
            + f"; median {share['median']} (range {share['min']}–{share['max']})\n"
        )
    scaling = results.get("group_scaling", {})
    rows = [
        [f"{int(size):,}", str(v["members"]), str(v["patch_add"]["p50_ms"]), str(v["patch_add"]["queries"]),
         str(v["patch_remove"]["p50_ms"]), str(v["get_excluded_members"]["p50_ms"]),
         str(v["get_excluded_members"]["queries"])]
        for size, v in sorted(scaling.items(), key=lambda item: int(item[0]))
    ]
    out.append("\nGroup scaling (server time, p50 ms)\n")
    out.append(table(["group size", "members", "PATCH add", "queries", "PATCH remove",
                      "GET excl. members", "queries"], rows))
    full, http = results.get("full_group_get", {}), results.get("full_group_get_http", {})
    lists, bulk = results.get("user_lists", {}), results.get("bulk", {})
    console, audit = results.get("console", {}), results.get("audit_search", {})
    cursor = results.get("cursor_paging", {})
    ov = results.get("write_overhead", {})
    oauth = results.get("oauth", {})
    rows = [
        ["Full GET largest group, HTTP streamed (first byte / total)", f"{http.get('ttfb_ms')} / {http.get('total_p50_ms')} ms, {http.get('bytes', 0) / 2**20:.1f} MiB"],
        ["Full GET largest group, server time / peak memory growth", f"{full.get('p50_ms')} ms / {full.get('peak_memory_growth_mb')} MB"],
        [f"GET /Users filter userName eq ({lists.get('users')} users)", f"p50 {_get(lists, 'filter_userName_eq', 'p50_ms')} ms, p95 {_get(lists, 'filter_userName_eq', 'p95_ms')} ms, {_get(lists, 'filter_userName_eq', 'queries')} queries"],
        ["GET /Users?startIndex=90001&count=100", f"p50 {_get(lists, 'deep_page_90001', 'p50_ms')} ms, {_get(lists, 'deep_page_90001', 'queries')} queries"],
        [f"Last page of {cursor.get('users')} users by cursor / by index (startIndex={_get(cursor, 'index_last_page', 'startIndex')}), count={cursor.get('count')}", f"p50 {_get(cursor, 'cursor_last_page', 'p50_ms')} / {_get(cursor, 'index_last_page', 'p50_ms')} ms, p95 {_get(cursor, 'cursor_last_page', 'p95_ms')} / {_get(cursor, 'index_last_page', 'p95_ms')} ms, {_get(cursor, 'cursor_last_page', 'queries')} / {_get(cursor, 'index_last_page', 'queries')} queries"],
        [f"Cursor walk over all users ({cursor.get('pages')} pages)", f"{cursor.get('walk_seconds')} s; per page p50 {_get(cursor, 'walk_page', 'p50_ms')} ms, p95 {_get(cursor, 'walk_page', 'p95_ms')} ms"],
        [f"Bulk, {bulk.get('operations')} POST operations", f"{bulk.get('total_ms')} ms ({bulk.get('per_operation_ms')} ms per operation)"],
        ["Console users search (q=a surname / no match)", f"p50 {_get(console, 'users_search', 'p50_ms')} / {_get(console, 'users_search_rare', 'p50_ms')} ms"],
        ["Console group members page (first / last, largest group)", f"p50 {_get(console, 'group_members_page', 'p50_ms')} / {_get(console, 'group_members_last_page', 'p50_ms')} ms"],
        [f"Audit log free text over {audit.get('entries')} entries + {audit.get('records', 0)} records (common / surname / userName)", f"p50 {_get(audit, 'free_text_common', 'p50_ms')} / {_get(audit, 'free_text_name', 'p50_ms')} / {_get(audit, 'free_text_rare', 'p50_ms')} ms"],
        ["Audit per-resource history (change records / audit log)", f"p50 {_get(audit, 'resource_history_records', 'p50_ms')} / {_get(audit, 'resource_history_entries', 'p50_ms')} ms"],
        [f"Pending operations, first page of {_get(results, 'api_pages', 'pending_waiting')} waiting: API (operator token) / console", f"p50 {_get(results, 'api_pages', 'pending_api', 'p50_ms')} / {_get(results, 'api_pages', 'pending_console', 'p50_ms')} ms, {_get(results, 'api_pages', 'pending_api', 'queries')} / {_get(results, 'api_pages', 'pending_console', 'queries')} queries"],
        ["Audit log, first page (50 rows): API (operator token) / console", f"p50 {_get(results, 'api_pages', 'audit_api', 'p50_ms')} / {_get(results, 'api_pages', 'audit_console', 'p50_ms')} ms, {_get(results, 'api_pages', 'audit_api', 'queries')} / {_get(results, 'api_pages', 'audit_console', 'queries')} queries"],
        ["PATCH user with / without audit + request log (HTTP)", f"{_get(ov, 'with_audit', 'rps')} / {_get(ov, 'without_audit', 'rps')} req/s; p50 {_get(ov, 'with_audit', 'p50_ms')} / {_get(ov, 'without_audit', 'p50_ms')} ms; overhead {ov.get('throughput_overhead_pct')} % throughput, {ov.get('p50_overhead_pct')} % p50 (alternating {ov.get('slot_s')} s turns for {ov.get('duration_s')} s; blocks of {ov.get('block_slots')} turns: " + ", ".join(f"{b} %" for b in ov.get("blocks", [])) + ")"],
    ]
    if oauth:
        rows += [
            ["GET /Users filter, static token / OAuth access token", f"p50 {_get(oauth, 'read_static_token', 'p50_ms')} / {_get(oauth, 'read_access_token', 'p50_ms')} ms (mean {_get(oauth, 'read_static_token', 'mean_ms')} / {_get(oauth, 'read_access_token', 'mean_ms')} ms); overhead {oauth.get('read_overhead_p50_pct')} % p50, {oauth.get('read_overhead_mean_pct')} % mean"],
            ["Token endpoint, client_secret_basic (one process, sequential)", f"{_get(oauth, 'token_endpoint', 'tokens_per_s')} tokens/s, p50 {_get(oauth, 'token_endpoint', 'p50_ms')} ms, p95 {_get(oauth, 'token_endpoint', 'p95_ms')} ms"],
        ]
    events = results.get("events")
    if events:
        patch, membership = events.get("patch_user", {}), events.get("membership_with_stream", {})
        sides = ("recorder_off", "no_stream", "one_stream")
        rows += [
            ["PATCH user: events recorder off / no stream / one stream (" + str(patch.get("stream"))
             + "; delivery kicks to " + str(events.get("delivery_kicks")) + ")",
             " / ".join(f"{_get(patch, side, 'per_s')}" for side in sides) + " req/s (sequential); p50 "
             + " / ".join(f"{_get(patch, side, 'p50_ms')}" for side in sides) + " ms; queries "
             + " / ".join(f"{_get(patch, side, 'queries')}" for side in sides)
             + f"; one stream vs none {patch.get('stream_throughput_drop_pct')} % lower"],
        ]
        rows += [
            [f"Membership add / remove, {int(size):,} members, a full stream active",
             f"p50 {_get(v, 'patch_add', 'p50_ms')} / {_get(v, 'patch_remove', 'p50_ms')} ms, {_get(v, 'patch_add', 'queries')} queries, event payload {v.get('event_payload_bytes')} bytes"]
            for size, v in membership.items()
            if size.isdigit()
        ]
    lag = results.get("event_lag", {})
    if lag:
        rows.append(
            [f"Event delivery lag, {lag.get('events')} events at {lag.get('rate_per_s')}/s to a local SET push receiver (commit to arrival; {lag.get('sender')})",
             f"p50 {lag.get('p50_ms')} ms, p99 {lag.get('p99_ms')} ms, max {lag.get('max_ms')} ms; {lag.get('arrived')} arrived"]
        )
    out.append("\nSingle requests (server time in-process unless marked HTTP)\n")
    out.append(table(["measurement", "result"], rows))
    json_filters = results.get("json_filters")
    if json_filters:
        rows = [
            [name, str(case["query"]), str(case["p50_ms"]), str(case["p95_ms"]), str(case["queries"])]
            for name, case in json_filters.items()
            if isinstance(case, dict)
        ]
        out.append(
            f"\nFilters and sortBy on JSON-held attributes, GET /Users count=100 over "
            f"{json_filters.get('users')} users (server time in-process)\n"
        )
        out.append(table(["case", "query", "p50 ms", "p95 ms", "queries"], rows))
    worst = results.get("worst_requests")
    if worst:
        out.append(_worst_section(worst))
    rows = []
    for check in targets(results):
        verdict = "n/a" if check.met is None else ("met" if check.met else "MISSED")
        rows.append([check.label, f"{check.value} {check.unit}", f"<= {check.limit}", verdict])
    out.append("\nTargets\n")
    out.append(table(["target", "value", "limit", "verdict"], rows))
    return "\n".join(out)
