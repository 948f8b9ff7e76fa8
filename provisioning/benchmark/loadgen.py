"""An IdP traffic generator: concurrent asyncio workers replaying an Entra-like mix.

Runs in its own process (``python -m provisioning.benchmark.loadgen``) so the
server under test does not share an interpreter with the load. Prints one JSON
document with throughput and latency percentiles per operation.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import random
import statistics
import sys
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass

import httpx

from provisioning.benchmark.history import TITLES

PATCH = "urn:ietf:params:scim:api:messages:2.0:PatchOp"
USER = "urn:ietf:params:scim:schemas:core:2.0:User"

# (operation, weight): roughly what an Entra provisioning cycle sends.
ENTRA_MIX = [
    ("filter_userName", 30),
    ("filter_externalId", 10),
    ("get_user", 20),
    ("patch_user", 15),
    ("post_user", 5),
    ("patch_group_member", 10),
    ("list_page", 10),
]


# PATCH user only: the write whose audit and request-log overhead is measured.
WRITE_MIX = [("patch_user", 1)]
MIXES = {"entra": ENTRA_MIX, "floor": [("floor", 1)], "write": WRITE_MIX}


@dataclass
class Target:
    user_ids: list[str]
    user_names: list[str]
    external_ids: list[str]
    group_ids: list[str]
    # Absolute URL of the framework-floor view (mounted outside /scim/v2).
    floor_url: str = ""


def patch_user_body(rng: random.Random) -> dict:
    """A PATCH replacing a user's title with one of the synthetic directory's titles and a
    suffix no earlier run sent (the seed repeats, and a repeated value would be a no-op that
    writes nothing). Each run writes tens of thousands of these change records: titles
    unlike the directory's would leave its common words ever rarer among the newest
    records, and the audit search timings (which look for one) slower run after run."""
    title = f"{rng.choice(TITLES)} {uuid.uuid4().hex[:12]}"
    return {"schemas": [PATCH], "Operations": [{"op": "Replace", "path": "title", "value": title}]}


def percentile(values: list[float], q: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def one_request(client: httpx.AsyncClient, op: str, target: Target, rng: random.Random):
    if op == "filter_userName":
        name = rng.choice(target.user_names)
        return await client.get("/Users", params={"filter": f'userName eq "{name}"'})
    if op == "filter_externalId":
        ext = rng.choice(target.external_ids)
        return await client.get("/Users", params={"filter": f'externalId eq "{ext}"'})
    if op == "get_user":
        return await client.get(f"/Users/{rng.choice(target.user_ids)}")
    if op == "patch_user":
        return await client.patch(f"/Users/{rng.choice(target.user_ids)}", json=patch_user_body(rng))
    if op == "post_user":
        name = f"bench-{uuid.uuid4().hex[:12]}@load.example"
        body = {"schemas": [USER], "userName": name, "active": True, "displayName": "Load Test"}
        return await client.post("/Users", json=body)
    if op == "patch_group_member":
        user_id = rng.choice(target.user_ids)
        group_id = rng.choice(target.group_ids)
        operation = rng.choice(
            [
                {"op": "Add", "path": "members", "value": [{"value": user_id}]},
                {"op": "Remove", "path": f'members[value eq "{user_id}"]'},
            ]
        )
        body = {"schemas": [PATCH], "Operations": [operation]}
        return await client.patch(f"/Groups/{group_id}", json=body)
    if op == "list_page":
        start = rng.randint(0, 50) * 100 + 1
        return await client.get("/Users", params={"startIndex": start, "count": 100})
    if op == "floor":
        return await client.get(target.floor_url)
    raise ValueError(op)


def summary(latencies: dict[str, list[float]], errors: dict[str, int], seconds: float) -> dict:
    """Throughput and latency percentiles of one run (or of one side of an alternating run,
    over the seconds its slots took), overall and per operation."""
    total = sum(len(v) for v in latencies.values())
    all_latencies = [x for v in latencies.values() for x in v]
    return {
        "duration_s": seconds,
        "requests": total,
        "rps": round(total / seconds, 1),
        "errors": sum(errors.values()),
        "p50_ms": round(percentile(all_latencies, 50), 2),
        "p95_ms": round(percentile(all_latencies, 95), 2),
        "p99_ms": round(percentile(all_latencies, 99), 2),
        "operations": {
            op: {
                "requests": len(values),
                "errors": errors[op],
                "mean_ms": round(statistics.fmean(values), 2) if values else 0,
                "p50_ms": round(percentile(values, 50), 2),
                "p95_ms": round(percentile(values, 95), 2),
                "p99_ms": round(percentile(values, 99), 2),
            }
            for op, values in sorted(latencies.items())
        },
    }


def slot_of(elapsed: float, slot: float) -> int:
    """The slot a moment ``elapsed`` seconds into an alternating run falls in: slot ``n``
    goes to side ``n % 2``. Warm-up moments (negative) alternate by slot as well."""
    return math.floor(elapsed / slot)


async def run(
    base_url: str,
    token: str,
    target: Target,
    *,
    mix: list[tuple[str, int]],
    duration: float,
    concurrency: int,
    warmup: float,
    seed: int,
    alternate: str | None = None,
    slot: float = 2.0,
) -> dict:
    """Drive ``mix`` at ``base_url`` for ``duration`` seconds after ``warmup``.

    With ``alternate``, the same clients send to ``base_url`` and ``alternate`` in turn,
    ``slot`` seconds each (slot 0, 2, 4, ... to the first): two servers measured in the
    same minute, so that a shared machine's drift, a checkpoint or a neighbour's burst
    falls on both alike. Each request counts for the server it was sent to; each side's
    throughput is its requests over the seconds of its slots. The report then has
    ``sides`` (one summary each) and ``slots`` (requests sent in each measured slot).
    """
    bases = [base_url] if alternate is None else [base_url, alternate]
    latencies = [defaultdict(list) for _ in bases]
    errors = [defaultdict(int) for _ in bases]
    slots = [0] * (math.ceil(duration / slot) if alternate is not None else 0)
    ops, weights = zip(*mix, strict=True)
    measure_from = time.perf_counter() + warmup
    stop_at = measure_from + duration
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/scim+json"}

    async def worker(index: int) -> None:
        rng = random.Random(seed * 1000 + index)
        clients = [
            httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=30) for base in bases
        ]
        try:
            while (now := time.perf_counter()) < stop_at:
                number = slot_of(now - measure_from, slot) if alternate is not None else 0
                side = number % 2
                op = rng.choices(ops, weights)[0]
                started = time.perf_counter()
                try:
                    response = await one_request(clients[side], op, target, rng)
                    failed = response.status_code >= 400
                except httpx.HTTPError:
                    failed = True
                elapsed = (time.perf_counter() - started) * 1000
                if now >= measure_from:
                    latencies[side][op].append(elapsed)
                    if failed:
                        errors[side][op] += 1
                    if 0 <= number < len(slots):
                        slots[number] += 1
        finally:
            for client in clients:
                await client.aclose()

    await asyncio.gather(*(worker(i) for i in range(concurrency)))
    if alternate is None:
        return {"concurrency": concurrency, **summary(latencies[0], errors[0], duration)}
    # Each side's share of the measured time: its slots, the last one possibly cut short.
    seconds = [0.0, 0.0]
    for number in range(len(slots)):
        seconds[number % 2] += min(slot, duration - number * slot)
    return {
        "duration_s": duration,
        "concurrency": concurrency,
        "slot_s": slot,
        "sides": [summary(latencies[side], errors[side], seconds[side]) for side in (0, 1)],
        "slots": slots,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base-url", required=True, help="e.g. http://127.0.0.1:8765/scim/v2")
    parser.add_argument("--token", required=True)
    parser.add_argument("--targets", required=True, help="JSON file with ids and names to use")
    parser.add_argument("--mix", default="entra", choices=sorted(MIXES))
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--alternate", help="a second base URL, sent to in alternate slots")
    parser.add_argument("--slot", type=float, default=2.0, help="seconds per slot with --alternate")
    args = parser.parse_args(argv)
    with open(args.targets) as fp:
        target = Target(**json.load(fp))
    mix = MIXES[args.mix]
    result = asyncio.run(
        run(
            args.base_url.rstrip("/"),
            args.token,
            target,
            mix=mix,
            duration=args.duration,
            concurrency=args.concurrency,
            warmup=args.warmup,
            seed=args.seed,
            alternate=args.alternate.rstrip("/") if args.alternate else None,
            slot=args.slot,
        )
    )
    json.dump(result, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
