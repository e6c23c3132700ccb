"""Read API benchmark: rebill's GraphQL list against the same SQL served as plain JSON.

    .venv/bin/python bench/read_api.py [--subscriptions 100000] [--requests 200] [--first 50]
        [--clients 20] [--concurrent-requests 30] [--cases page,small,concurrent]

Seeds ``--subscriptions`` subscriptions (``rebill.seed``) into a fresh embedded
PostgreSQL in a temporary directory, or into ``DATABASE_URL`` when it is set
(topped up to that many). Then two servers run side by side, each in its own
process, under uvicorn on loopback ports:

* **rebill**: the real application, ``POST /graphql`` with an API key, its
  query cost, rate limiter and scopes in the path;
* **baseline**: a minimal Starlette endpoint per case doing the work any server
  must do for the same answer, by hand with asyncpg: look the API key up, run
  the rate limiter's statement (rebill's own, on a bucket of its own), run the
  page's SQL, and return the same JSON document with ``json.dumps``.

Three cases:

* ``page``: ``subscriptions(first: 50)`` with ``totalCount``, ``pageInfo``,
  nested items (and their product), profile and customer; the baseline runs
  the page and its total count, then the page's items, profiles, customers and
  products, one ``= ANY($1)`` query each;
* ``small``: ``subscriptions(first: 5) { edges { node { id status
  nextRenewalDate } } }``; the baseline reads those three columns of five rows;
* ``concurrent``: the ``page`` query from ``--clients`` clients at once, each
  sending its requests one after the other, against ``rebill serve --workers 2``
  and the baseline under uvicorn with two workers.

Every answer pair is first checked to be equal. In the two sequential cases
requests alternate between the servers over keep-alive connections, walking
the same pages in the same order; the concurrent case alternates rounds. The
script prints p50 and p95 of each and the ratio rebill / baseline beside its
target, and exits with status 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
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

SMALL_QUERY = """query($first: Int!, $after: String) {
  subscriptions(first: $first, after: $after) { edges { node { id status nextRenewalDate } } }
}"""
SMALL_FIRST = 5

#: Rebill's latency over the baseline's, at p50 and at p95, for the sequential cases.
TARGET = 1.5

BASELINE_DSN = "REBILL_BENCH_BASELINE_DSN"


# -- the baseline server ---------------------------------------------------------------


def baseline_app(dsn: str) -> Any:
    """The two queries written by hand: asyncpg statements, dicts, ``json.dumps``."""
    import asyncpg  # type: ignore[import-untyped]
    from sqlalchemy.dialects.postgresql import asyncpg as asyncpg_dialect
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from rebill.domain.money import Money
    from rebill.resolvers.cost import TAKE
    from rebill.schema.common import decode_cursor, encode_cursor, to_global_id
    from rebill.services.apikeys import hash_secret

    # The rate limiter's statement exactly as rebill sends it.
    take = TAKE.compile(dialect=asyncpg_dialect.dialect())
    take_sql, take_order = str(take), take.positiontup
    assert take_order == ["bucket", "cost", "size", "restore"], take_order
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

    async def admit(conn: Any, request: Request, cost: int) -> bool:
        """The API key, then the rate limiter's statement on the key's bucket."""
        header = request.headers.get("authorization", "")
        key = await conn.fetchrow(
            "SELECT id, name, scopes FROM api_keys WHERE secret_hash = $1 AND revoked_at IS NULL",
            hash_secret(header.partition(" ")[2].strip()),
        )
        if key is None:
            return False
        await conn.fetchrow(take_sql, f"key:{key['id']}", float(cost), 1e9, 1e9)
        return True

    def unauthenticated() -> Response:
        return JSONResponse({"errors": [{"message": "unauthenticated"}]}, status_code=401)

    async def subscriptions(request: Request) -> Response:
        body = await request.json()
        first = int(body.get("first", 50))
        after = decode_cursor(body.get("after")) or 0
        async with pool.acquire() as conn:
            if not await admit(conn, request, int(body.get("cost", 0))):
                return unauthenticated()
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

    async def small(request: Request) -> Response:
        body = await request.json()
        first = int(body.get("first", SMALL_FIRST))
        after = decode_cursor(body.get("after")) or 0
        async with pool.acquire() as conn:
            if not await admit(conn, request, int(body.get("cost", 0))):
                return unauthenticated()
            rows = await conn.fetch(
                "SELECT id, status, next_renewal_date FROM subscriptions WHERE id > $1 ORDER BY id LIMIT $2",
                after,
                first,
            )
        edges = [
            {
                "node": {
                    "id": to_global_id("Subscription", r["id"]),
                    "status": r["status"],
                    "nextRenewalDate": None
                    if r["status"] in ("CANCELLED", "EXPIRED") or r["next_renewal_date"] is None
                    else r["next_renewal_date"].isoformat(),
                }
            }
            for r in rows
        ]
        return JSONResponse({"data": {"subscriptions": {"edges": edges}}})

    async def ready(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(
        routes=[
            Route("/subscriptions", subscriptions, methods=["POST"]),
            Route("/small", small, methods=["POST"]),
            Route("/healthz", ready),
        ],
        lifespan=lifespan,
    )


def baseline_from_env() -> Any:
    """The baseline for uvicorn's worker processes (``factory=True``): its DSN comes in the environment."""
    return baseline_app(os.environ[BASELINE_DSN])


def rebill_settings_env(url: str) -> dict[str, str]:
    """``rebill serve`` as the benchmark runs it: a bucket it never empties (the limiter's statement runs,
    it never refuses), and no bulk worker or GraphiQL page beside the API."""
    return {
        "DATABASE_URL": url,
        "REBILL_RATE_LIMIT_BUCKET": "1000000000",
        "REBILL_RATE_LIMIT_RESTORE": "1000000000",
        "REBILL_BULK_WORKER_IN_SERVER": "false",
        "REBILL_GRAPHIQL": "false",
    }


def serve(kind: str, port: int, url: str, workers: int) -> None:
    """Run one server (in its own process, started by ``main``)."""
    import uvicorn

    if kind == "baseline":
        dsn = url.replace("postgresql+asyncpg://", "postgresql://", 1)
        if workers > 1:
            os.environ[BASELINE_DSN] = dsn
            uvicorn.run(
                "read_api:baseline_from_env",
                factory=True,
                app_dir=str(Path(__file__).parent),
                host="127.0.0.1",
                port=port,
                workers=workers,
                log_level="warning",
                access_log=False,
            )
            return
        application = baseline_app(dsn)
    else:
        from rebill.app import create_app
        from rebill.config import Settings
        from rebill.db.engine import make_engine
        from rebill.services.runtime import Services

        os.environ.update(rebill_settings_env(url))
        settings = Settings.from_env()
        application = create_app(Services(make_engine(url), settings))
        from rebill.process import settle_heap

        settle_heap()  # as `rebill serve` does once started
    config = uvicorn.Config(
        application, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on"
    )
    uvicorn.Server(config).run()


# -- the run -------------------------------------------------------------------------------


async def prepare(url: str, n: int, seed_value: int) -> tuple[str, str, int]:
    """Migrate, seed up to ``n`` subscriptions, create an API key for each server: (rebill's, baseline's, rows)."""
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
        if have < n:
            print(f"seeding {n - have:,} subscriptions ...", flush=True)
            report = await seed(services, n - have, seed=seed_value)
            print(
                f"seeded {report.subscriptions:,} subscriptions in {report.seconds:.1f} s "
                f"({report.rate:,.0f}/s; {report.renewals:,} renewals, {report.history_entries:,} history entries)",
                flush=True,
            )
        else:
            print(f"database already holds {have:,} subscriptions: not seeding", flush=True)
        name = f"bench-{os.getpid()}-{int(time.time())}"
        mine = await create_key(engine, name, ["read"], services.clock.now())
        theirs = await create_key(engine, f"{name}-baseline", ["read"], services.clock.now())
        return mine.secret, theirs.secret, max(have, n)
    finally:
        await engine.dispose()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def start_server(kind: str, url: str, workers: int = 1) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    if kind == "rebill" and workers > 1:
        # The real command, as an operator runs it.
        command = [sys.executable, "-m", "rebill.cli", "serve", "--port", str(port), "--workers", str(workers)]
        command += ["--log-level", "warning"]
        env = {**os.environ, **rebill_settings_env(url)}
        return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL), port
    command = [sys.executable, __file__, "--serve", kind, "--port", str(port), "--url", url]
    return subprocess.Popen([*command, "--workers", str(workers)]), port


def stop(processes: list[subprocess.Popen[bytes]]) -> None:
    for process in processes:
        process.terminate()
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
    processes.clear()


async def wait_ready(base: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 120
    async with httpx.AsyncClient(timeout=5) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"the server behind {base} exited with {process.returncode}")
            try:
                if (await client.get(f"{base}/healthz")).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)
    raise RuntimeError(f"{base} did not come up within two minutes")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


Ask = Callable[[httpx.AsyncClient, str | None], Awaitable[dict[str, Any]]]


@dataclass
class Case:
    """One query, asked of both servers: how to ask each, and the figures it must meet."""

    name: str
    title: str
    rebill: Ask
    baseline: Ask
    target: float | None


def case_askers(name: str, first: int, rebill_base: str, baseline_base: str) -> tuple[Ask, Ask]:
    query, path = (QUERY, "subscriptions") if name != "small" else (SMALL_QUERY, "small")
    cost: dict[str, int] = {}

    async def ask_rebill(client: httpx.AsyncClient, after: str | None) -> dict[str, Any]:
        response = await client.post(
            f"{rebill_base}/graphql", json={"query": query, "variables": {"first": first, "after": after}}
        )
        body: dict[str, Any] = response.json()
        if response.status_code != 200 or body.get("errors"):
            raise RuntimeError(f"rebill answered {response.status_code}: {str(body)[:500]}")
        cost.setdefault("requested", body["extensions"]["cost"]["requestedQueryCost"])
        return body

    async def ask_baseline(client: httpx.AsyncClient, after: str | None) -> dict[str, Any]:
        # The baseline charges its bucket what rebill charges for the same query.
        response = await client.post(
            f"{baseline_base}/{path}", json={"first": first, "after": after, "cost": cost.get("requested", 0)}
        )
        if response.status_code != 200:
            raise RuntimeError(f"the baseline answered {response.status_code}: {response.text[:500]}")
        body: dict[str, Any] = response.json()
        return body

    return ask_rebill, ask_baseline


def client(secret: str, connections: int = 1) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=connections, max_keepalive_connections=connections)
    return httpx.AsyncClient(headers={"Authorization": f"Bearer {secret}"}, limits=limits, timeout=60)


async def check_equal(
    case: Case, mine: httpx.AsyncClient, theirs: httpx.AsyncClient, cursors: list[str | None]
) -> None:
    for after in cursors[:3]:
        a, b = await case.rebill(mine, after), await case.baseline(theirs, after)
        a.pop("extensions", None)  # the query's cost and the key's bucket: rebill's own
        if a != b:
            raise RuntimeError(
                f"{case.name}: rebill and the baseline disagree about a page: the comparison would be unfair"
            )


async def sequential(
    case: Case, secrets: tuple[str, str], cursors: list[str | None], args: argparse.Namespace
) -> dict[str, list[float]]:
    """Requests alternate between the servers, one at a time, over one keep-alive connection each."""
    async with client(secrets[0]) as mine, client(secrets[1]) as theirs:
        await check_equal(case, mine, theirs, cursors)
        for n in range(args.warmup):
            await case.rebill(mine, cursors[n % len(cursors)])
            await case.baseline(theirs, cursors[n % len(cursors)])
        timings: dict[str, list[float]] = {"rebill": [], "baseline": []}
        for n in range(args.requests):
            after = cursors[n % len(cursors)]
            for name, ask, http in (("rebill", case.rebill, mine), ("baseline", case.baseline, theirs)):
                started = time.perf_counter()
                await ask(http, after)
                timings[name].append((time.perf_counter() - started) * 1000)
    return timings


async def concurrent(
    case: Case, secrets: tuple[str, str], cursors: list[str | None], args: argparse.Namespace
) -> tuple[dict[str, list[float]], dict[str, float]]:
    """``--clients`` clients at once, each asking one request after the other; rounds alternate servers."""
    timings: dict[str, list[float]] = {"rebill": [], "baseline": []}
    elapsed: dict[str, float] = {"rebill": 0.0, "baseline": 0.0}
    async with client(secrets[0], args.clients) as mine, client(secrets[1], args.clients) as theirs:
        await check_equal(case, mine, theirs, cursors)

        async def round_of(name: str, ask: Ask, http: httpx.AsyncClient, requests: int, record: bool) -> None:
            async def one_client(k: int) -> None:
                for n in range(requests):
                    after = cursors[(k + n) % len(cursors)]
                    started = time.perf_counter()
                    await ask(http, after)
                    if record:
                        timings[name].append((time.perf_counter() - started) * 1000)

            started = time.perf_counter()
            await asyncio.gather(*(one_client(k) for k in range(args.clients)))
            if record:
                elapsed[name] += time.perf_counter() - started

        warm = max(1, args.warmup // 4)
        await round_of("rebill", case.rebill, mine, warm, False)
        await round_of("baseline", case.baseline, theirs, warm, False)
        rounds = 3
        for r in range(rounds):
            share = args.concurrent_requests // rounds + (1 if r < args.concurrent_requests % rounds else 0)
            await round_of("rebill", case.rebill, mine, share, True)
            await round_of("baseline", case.baseline, theirs, share, True)
    return timings, elapsed


def report(case: Case, timings: dict[str, list[float]], rows: int, note: str) -> bool:
    """Print a case's figures and its targets; whether every target is met."""
    print()
    print(f"[{case.name}] {case.title}; {rows:,} subscriptions")
    print(f"  {note}")
    print(f"  {'':10} {'p50 ms':>8} {'p95 ms':>8} {'mean ms':>8}")
    for name, values in timings.items():
        print(
            f"  {name:10} {percentile(values, 50):8.2f} {percentile(values, 95):8.2f} {statistics.fmean(values):8.2f}"
        )
    met = True
    for p in (50, 95):
        ratio = percentile(timings["rebill"], p) / percentile(timings["baseline"], p)
        if case.target is None:
            verdict = "reported (no target)"
        else:
            ok = ratio <= case.target
            met = met and ok
            verdict = f"target at most {case.target:.1f}x: {'met' if ok else 'MISSED'}"
        print(f"  ratio rebill/baseline p{p}: {ratio:.2f}x   {verdict}")
    return met


async def run_cases(
    url: str, secrets: tuple[str, str], rows: int, args: argparse.Namespace, cases: list[str]
) -> list[tuple[str, bool]]:
    from rebill.schema.common import encode_cursor

    # The same pages, in the same order, for both: spread over the whole table.
    step = max(rows // 10, 1)
    cursors: list[str | None] = [None] + [encode_cursor(k * step) for k in range(1, 10)]
    results: list[tuple[str, bool]] = []
    processes: list[subprocess.Popen[bytes]] = []
    try:
        sequential_cases = [c for c in cases if c in ("page", "small")]
        if sequential_cases:
            rebill_process, rebill_port = start_server("rebill", url)
            baseline_process, baseline_port = start_server("baseline", url)
            processes += [rebill_process, baseline_process]
            rebill_base, baseline_base = f"http://127.0.0.1:{rebill_port}", f"http://127.0.0.1:{baseline_port}"
            await wait_ready(rebill_base, rebill_process)
            await wait_ready(baseline_base, baseline_process)
            for name in sequential_cases:
                first = args.first if name == "page" else SMALL_FIRST
                title = (
                    f"subscriptions(first: {first}) with items {{ product }}, profile, customer"
                    if name == "page"
                    else f"subscriptions(first: {first}) {{ edges {{ node {{ id status nextRenewalDate }} }} }}"
                )
                case = Case(name, title, *case_askers(name, first, rebill_base, baseline_base), TARGET)
                timings = await sequential(case, secrets, cursors, args)
                note = f"{args.requests} sequential requests each over HTTP keep-alive, after {args.warmup} warm-up"
                results.append((name, report(case, timings, rows, note)))
            stop(processes)
        if "concurrent" in cases:
            rebill_process, rebill_port = start_server("rebill", url, workers=2)
            baseline_process, baseline_port = start_server("baseline", url, workers=2)
            processes += [rebill_process, baseline_process]
            rebill_base, baseline_base = f"http://127.0.0.1:{rebill_port}", f"http://127.0.0.1:{baseline_port}"
            await wait_ready(rebill_base, rebill_process)
            await wait_ready(baseline_base, baseline_process)
            title = (
                f"subscriptions(first: {args.first}) with items {{ product }}, profile, customer, "
                f"{args.clients} clients at once; rebill serve --workers 2, the baseline under uvicorn --workers 2"
            )
            case = Case("concurrent", title, *case_askers("page", args.first, rebill_base, baseline_base), None)
            timings, elapsed = await concurrent(case, secrets, cursors, args)
            count = args.clients * args.concurrent_requests
            note = (
                f"{count} requests a server in 3 alternating rounds; throughput rebill "
                f"{count / elapsed['rebill']:.0f}/s, baseline {count / elapsed['baseline']:.0f}/s"
            )
            results.append(("concurrent", report(case, timings, rows, note)))
            stop(processes)
    finally:
        stop(processes)
    return results


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscriptions", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--first", type=int, default=50)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--concurrent-requests", type=int, default=30, help="requests per client")
    parser.add_argument("--cases", default="page,small,concurrent")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--serve", choices=("rebill", "baseline"), help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--workers", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve(args.serve, args.port, args.url, args.workers)
        return 0
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    unknown = set(cases) - {"page", "small", "concurrent"}
    if unknown:
        parser.error(f"unknown cases: {', '.join(sorted(unknown))}")

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
    try:
        mine, theirs, rows = asyncio.run(prepare(url, args.subscriptions, args.seed))
        results = asyncio.run(run_cases(url, (mine, theirs), rows, args, cases))
    finally:
        if server is not None:
            server.cleanup()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    print()
    missed = [name for name, met in results if not met]
    print(json.dumps({"targets": "missed" if missed else "met", "missed": missed}))
    return 1 if missed else 0


if __name__ == "__main__":
    sys.exit(main())
