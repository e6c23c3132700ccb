"""Read API benchmark: rebill's GraphQL list against the same SQL served as plain JSON.

    .venv/bin/python bench/read_api.py [--subscriptions 100000] [--requests 200] [--first 50]

Seeds ``--subscriptions`` subscriptions (``rebill.seed``) into a fresh embedded
PostgreSQL in a temporary directory, or into ``DATABASE_URL`` when it is set
(topped up to that many). Then two servers run side by side, each in its own
process, under uvicorn on loopback ports:

* **rebill**: the real application, ``POST /graphql`` with an API key;
* **baseline**: a minimal Starlette endpoint that checks the same API key and
  runs the same statements by hand with asyncpg (the page and its total count,
  then the page's items, profiles, customers and products, one ``= ANY($1)``
  query each) and returns the same JSON document.

Both answer ``subscriptions(first: 50)`` with nested items (and their product),
profile and customer. The two answers are checked to be equal, then requests
alternate between the servers, sequentially over keep-alive connections,
walking the same pages in the same order. The script prints p50 and p95 of
each and the ratio rebill / baseline.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx

QUERY = """query($first: Int!, $after: String) {
  subscriptions(first: $first, after: $after) {
    totalCount
    pageInfo { hasNextPage endCursor }
    edges { cursor node {
      id status nextRenewalDate
      amount { amount currency }
      items { id quantity unitPrice { amount currency } product { id name sku } }
      profile { id name cadence { unit count } }
      customer { id email name }
    } }
  }
}"""


# -- the baseline server ---------------------------------------------------------------


def baseline_app(dsn: str) -> Any:
    """The list query written by hand: seven statements, dicts, ``json.dumps``."""
    import asyncpg  # type: ignore[import-untyped]
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from rebill.domain.money import Money
    from rebill.schema.common import decode_cursor, encode_cursor, to_global_id
    from rebill.services.apikeys import hash_secret

    pool: Any = None

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        nonlocal pool
        pool = await asyncpg.create_pool(dsn, min_size=2, max_size=10)
        try:
            yield
        finally:
            await pool.close()

    def money(minor: int, currency: str) -> dict[str, str]:
        return {"amount": Money(minor, currency).amount_str, "currency": currency}

    async def subscriptions(request: Request) -> Response:
        header = request.headers.get("authorization", "")
        body = await request.json()
        first = int(body.get("first", 50))
        after = decode_cursor(body.get("after")) or 0
        async with pool.acquire() as conn:
            key = await conn.fetchrow(
                "SELECT id, name, scopes FROM api_keys WHERE secret_hash = $1 AND revoked_at IS NULL",
                hash_secret(header.partition(" ")[2].strip()),
            )
            if key is None:
                return JSONResponse({"errors": [{"message": "unauthenticated"}]}, status_code=401)
            rows = await conn.fetch("SELECT * FROM subscriptions WHERE id > $1 ORDER BY id LIMIT $2", after, first + 1)
            total = await conn.fetchval("SELECT count(*) FROM subscriptions")
            page = rows[:first]
            ids = [r["id"] for r in page]
            items = await conn.fetch(
                "SELECT id, subscription_id, product_id, quantity, unit_price_minor, currency FROM subscription_items"
                " WHERE subscription_id = ANY($1::bigint[]) ORDER BY subscription_id, position, id",
                ids,
            )
            profiles = {
                r["id"]: r
                for r in await conn.fetch(
                    "SELECT id, name, interval_unit, interval_count FROM subscription_profiles"
                    " WHERE id = ANY($1::bigint[])",
                    list({r["profile_id"] for r in page}),
                )
            }
            customers = {
                r["id"]: r
                for r in await conn.fetch(
                    "SELECT id, email, name FROM customers WHERE id = ANY($1::bigint[])",
                    list({r["customer_id"] for r in page}),
                )
            }
            products = {
                r["id"]: r
                for r in await conn.fetch(
                    "SELECT id, name, sku FROM products WHERE id = ANY($1::bigint[])",
                    list({r["product_id"] for r in items}),
                )
            }
        by_subscription: dict[int, list[dict[str, Any]]] = {}
        for i in items:
            product = products[i["product_id"]]
            by_subscription.setdefault(i["subscription_id"], []).append(
                {
                    "id": to_global_id("SubscriptionItem", i["id"]),
                    "quantity": i["quantity"],
                    "unitPrice": money(i["unit_price_minor"], i["currency"]),
                    "product": {
                        "id": to_global_id("Product", product["id"]),
                        "name": product["name"],
                        "sku": product["sku"],
                    },
                }
            )
        edges = []
        for r in page:
            profile, customer = profiles[r["profile_id"]], customers[r["customer_id"]]
            final = r["status"] in ("CANCELLED", "EXPIRED")
            edges.append(
                {
                    "cursor": encode_cursor(r["id"]),
                    "node": {
                        "id": to_global_id("Subscription", r["id"]),
                        "status": r["status"],
                        "nextRenewalDate": None
                        if final or r["next_renewal_date"] is None
                        else r["next_renewal_date"].isoformat(),
                        "amount": money(r["amount_minor"], r["currency"]),
                        "items": by_subscription.get(r["id"], []),
                        "profile": {
                            "id": to_global_id("SubscriptionProfile", profile["id"]),
                            "name": profile["name"],
                            "cadence": {"unit": profile["interval_unit"], "count": profile["interval_count"]},
                        },
                        "customer": {
                            "id": to_global_id("Customer", customer["id"]),
                            "email": customer["email"],
                            "name": customer["name"],
                        },
                    },
                }
            )
        return JSONResponse(
            {
                "data": {
                    "subscriptions": {
                        "totalCount": total,
                        "pageInfo": {
                            "hasNextPage": len(rows) > first,
                            "endCursor": edges[-1]["cursor"] if edges else None,
                        },
                        "edges": edges,
                    }
                }
            }
        )

    async def ready(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[Route("/subscriptions", subscriptions, methods=["POST"]), Route("/healthz", ready)],
        lifespan=lifespan,
    )


def serve(kind: str, port: int, url: str) -> None:
    """Run one server (in its own process, started by ``main``)."""
    import uvicorn

    if kind == "baseline":
        application = baseline_app(url.replace("postgresql+asyncpg://", "postgresql://", 1))
    else:
        from rebill.app import create_app
        from rebill.config import Settings
        from rebill.db.engine import make_engine
        from rebill.services.runtime import Services

        # A bucket the benchmark never empties: the rate limiter's statement runs, it never refuses.
        settings = Settings(
            database_url=url,
            bulk_worker_in_server=False,
            graphiql=False,
            rate_limit_bucket=1_000_000_000,
            rate_limit_restore=1_000_000_000,
        )
        application = create_app(Services(make_engine(url), settings))
    config = uvicorn.Config(
        application, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on"
    )
    uvicorn.Server(config).run()


# -- the run -------------------------------------------------------------------------------


async def prepare(url: str, n: int, seed_value: int) -> tuple[str, float | None, int]:
    """Migrate, seed up to ``n`` subscriptions, create an API key: (secret, seed seconds, rows)."""
    from sqlalchemy import text

    from rebill.config import Settings
    from rebill.db.engine import make_engine
    from rebill.db.migrate import upgrade
    from rebill.seed import seed
    from rebill.services.apikeys import create_key
    from rebill.services.runtime import Services

    engine = make_engine(url)
    try:
        await upgrade(engine)
        services = Services(engine, Settings(database_url=url))
        async with engine.connect() as conn:
            have = int((await conn.execute(text("SELECT count(*) FROM subscriptions"))).scalar_one())
        seconds = None
        if have < n:
            print(f"seeding {n - have:,} subscriptions ...", flush=True)
            report = await seed(services, n - have, seed=seed_value)
            seconds = report.seconds
            print(
                f"seeded {report.subscriptions:,} subscriptions in {report.seconds:.1f} s "
                f"({report.rate:,.0f}/s; {report.renewals:,} renewals, {report.history_entries:,} history entries)",
                flush=True,
            )
        else:
            print(f"database already holds {have:,} subscriptions: not seeding", flush=True)
        name = f"bench-{os.getpid()}-{int(time.time())}"
        key = await create_key(engine, name, ["read"], services.clock.now())
        return key.secret, seconds, max(have, n)
    finally:
        await engine.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_server(kind: str, url: str) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    process = subprocess.Popen([sys.executable, __file__, "--serve", kind, "--port", str(port), "--url", url])
    return process, port


async def wait_ready(client: httpx.AsyncClient, base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server behind {base} exited with {process.returncode}")
        try:
            if (await client.get(f"{base}/healthz")).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.2)
    raise RuntimeError(f"{base} did not come up within a minute")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


async def measure(secret: str, rebill_port: int, baseline_port: int, args: argparse.Namespace, rows: int) -> None:
    from rebill.schema.common import encode_cursor

    headers = {"Authorization": f"Bearer {secret}"}
    rebill_base, baseline_base = f"http://127.0.0.1:{rebill_port}", f"http://127.0.0.1:{baseline_port}"
    # The same pages, in the same order, for both: spread over the whole table.
    step = max(rows // 10, 1)
    cursors: list[str | None] = [None] + [encode_cursor(k * step) for k in range(1, 10)]
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with (
        httpx.AsyncClient(headers=headers, limits=limits, timeout=60) as rebill_client,
        httpx.AsyncClient(headers=headers, limits=limits, timeout=60) as baseline_client,
    ):

        async def ask_rebill(after: str | None) -> dict[str, Any]:
            response = await rebill_client.post(
                f"{rebill_base}/graphql", json={"query": QUERY, "variables": {"first": args.first, "after": after}}
            )
            body: dict[str, Any] = response.json()
            if response.status_code != 200 or body.get("errors"):
                raise RuntimeError(f"rebill answered {response.status_code}: {str(body)[:500]}")
            return body

        async def ask_baseline(after: str | None) -> dict[str, Any]:
            response = await baseline_client.post(
                f"{baseline_base}/subscriptions", json={"first": args.first, "after": after}
            )
            if response.status_code != 200:
                raise RuntimeError(f"the baseline answered {response.status_code}: {response.text[:500]}")
            body: dict[str, Any] = response.json()
            return body

        for after in cursors[:3]:
            mine, theirs = await ask_rebill(after), await ask_baseline(after)
            mine.pop("extensions", None)  # the query's cost and the key's bucket: rebill's own
            if mine != theirs:
                raise RuntimeError("rebill and the baseline disagree about a page: the comparison would be unfair")
        print(f"both servers return the same {args.first}-subscription pages", flush=True)

        for n in range(args.warmup):
            await ask_rebill(cursors[n % len(cursors)])
            await ask_baseline(cursors[n % len(cursors)])

        timings: dict[str, list[float]] = {"rebill": [], "baseline": []}
        for n in range(args.requests):
            after = cursors[n % len(cursors)]
            for name, ask in (("rebill", ask_rebill), ("baseline", ask_baseline)):
                started = time.perf_counter()
                await ask(after)
                timings[name].append((time.perf_counter() - started) * 1000)

    print()
    print(f"subscriptions(first: {args.first}) with items {{ product }}, profile, customer; {rows:,} subscriptions")
    print(f"{args.requests} sequential requests each over HTTP keep-alive, after {args.warmup} warm-up requests")
    print(f"{'':10} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8}")
    for name, values in timings.items():
        print(f"{name:10} {percentile(values, 50):8.2f} {percentile(values, 95):8.2f} {statistics.fmean(values):8.2f}")
    p50 = percentile(timings["rebill"], 50) / percentile(timings["baseline"], 50)
    p95 = percentile(timings["rebill"], 95) / percentile(timings["baseline"], 95)
    print(f"ratio rebill/baseline: p50 {p50:.2f}x, p95 {p95:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscriptions", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--first", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--serve", choices=("rebill", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.url)
        return

    from rebill.db.embedded import asyncpg_url, start_embedded
    from rebill.db.engine import to_async_url

    tmp: str | None = None
    server = None
    if os.environ.get("DATABASE_URL"):
        url = to_async_url(os.environ["DATABASE_URL"])
        print("using DATABASE_URL", flush=True)
    else:
        tmp = tempfile.mkdtemp(prefix="rebill-bench-")
        server = start_embedded(Path(tmp), cleanup_mode="delete")
        url = asyncpg_url(server)
        print(f"embedded PostgreSQL in {tmp}", flush=True)
    processes: list[subprocess.Popen[bytes]] = []
    try:
        secret, _, rows = asyncio.run(prepare(url, args.subscriptions, args.seed))
        rebill_process, rebill_port = start_server("rebill", url)
        processes.append(rebill_process)
        baseline_process, baseline_port = start_server("baseline", url)
        processes.append(baseline_process)

        async def run() -> None:
            async with httpx.AsyncClient(timeout=5) as probe:
                await wait_ready(probe, f"http://127.0.0.1:{rebill_port}", rebill_process)
                await wait_ready(probe, f"http://127.0.0.1:{baseline_port}", baseline_process)
            await measure(secret, rebill_port, baseline_port, args, rows)

        asyncio.run(run())
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
        if server is not None:
            server.cleanup()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
