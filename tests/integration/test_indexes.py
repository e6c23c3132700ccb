"""At a million subscriptions, the list filter and the renewal worker's due query use indexes.

A million rows are generated in SQL (``INSERT … SELECT generate_series``) in a
schema of their own, in copies of ``subscriptions``, ``customers`` and
``renewals`` that get every index the migrations created on the real tables,
by the same definitions. The statements are the ones the application sends:
the list query's are captured while ``fetch_page`` runs with
``compile_filter``'s clauses, the worker's is the renewal engine's own due
query, and each is EXPLAINed with its own parameters.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import pytest
from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, create_async_engine
from sqlalchemy.pool import NullPool

from rebill.db import tables as t
from rebill.domain.status import SubscriptionStatus
from rebill.resolvers.pages import fetch_page
from rebill.schema.common import encode_cursor
from rebill.services import filters

pytestmark = pytest.mark.slow

S = t.table_of(t.Subscription)
ROWS = 1_000_000
TODAY = date(2026, 1, 15)

# Statuses and dates spread as in a live system: mostly active, renewals over the next
# year, trials over the next month, overdue ones around today, final ones without a date.
FILL = """
INSERT INTO {schema}.subscriptions (id, customer_id, profile_id, currency, status, renewal_type, start_date,
    anchor_date, next_renewal_date, trial_end_date, amount_minor, gateway_id, gateway_mode,
    occurrences_billed, last_cycle)
SELECT g,
       1 + (g::bigint * 7919) % 400000,
       1 + g % 12,
       CASE WHEN r2 < 0.8 THEN 'USD' WHEN r2 < 0.92 THEN 'EUR' ELSE 'GBP' END,
       status,
       CASE WHEN status = 'AWAITING_REINSTATE' OR r3 < 0.06 THEN 'MANUAL' ELSE 'AUTOMATIC' END,
       today - age,
       today - age,
       CASE status
           WHEN 'CANCELLED' THEN NULL
           WHEN 'EXPIRED' THEN NULL
           WHEN 'TRIAL' THEN today + (r2 * 30)::int
           WHEN 'OVERDUE' THEN today - 5 + (r2 * 20)::int
           WHEN 'AWAITING_REINSTATE' THEN today - 1 - (r2 * 45)::int
           ELSE today + (power(r2, 1.2) * 365)::int
       END,
       CASE WHEN status = 'TRIAL' THEN today + (r2 * 30)::int END,
       (500 + power(r3, 3) * 50000)::bigint,
       CASE WHEN r3 > 0.88 THEN 'sandbox-b' END,
       CASE WHEN r3 > 0.94 THEN 'FORCED' WHEN r3 > 0.88 THEN 'PREFERRED' END,
       1 + age / 30,
       1 + age / 30
FROM (
    SELECT g, r2, r3, DATE '{today}' AS today, (power(r3, 2) * 900)::int AS age,
           CASE WHEN r < 0.72 THEN 'ACTIVE' WHEN r < 0.78 THEN 'TRIAL' WHEN r < 0.83 THEN 'OVERDUE'
                WHEN r < 0.87 THEN 'SUSPENDED' WHEN r < 0.96 THEN 'CANCELLED' WHEN r < 0.985 THEN 'EXPIRED'
                ELSE 'AWAITING_REINSTATE' END AS status
    FROM (SELECT g, random() AS r, random() AS r2, random() AS r3 FROM generate_series(1, {rows}) AS g) AS draws
) AS rows
"""

INDEX_SCANS = {"Index Scan", "Index Only Scan", "Bitmap Index Scan"}


CUSTOMERS = 400_000
FILL_CUSTOMERS = """
INSERT INTO {schema}.customers (id, email, name, time_zone)
SELECT g, 'customer' || g || '@example.com', 'Customer ' || g, 'UTC' FROM generate_series(1, {rows}) AS g
"""
# A renewal per billed subscription; a few are still being charged (PENDING).
FILL_RENEWALS = """
INSERT INTO {schema}.renewals (subscription_id, cycle, kind, status, period_start, period_end, amount_minor,
                               currency, attempts, idempotency_key, paid_at)
SELECT s.id, s.last_cycle, 'SCHEDULED', CASE WHEN s.id % 200 = 0 THEN 'PENDING' ELSE 'PAID' END,
       s.start_date, s.start_date + 30, s.amount_minor, s.currency, 1, 'rnw_' || s.id || '_' || s.last_cycle,
       CASE WHEN s.id % 200 <> 0 THEN now() END
FROM {schema}.subscriptions s WHERE s.status <> 'TRIAL'
"""
# The tables the measured statements read, copied with their real indexes.
TABLES = ("subscriptions", "customers", "renewals")


@pytest.fixture(scope="module")
async def million(engine: AsyncEngine, database_url: str) -> AsyncIterator[tuple[AsyncEngine, set[str]]]:
    """An engine whose ``subscriptions`` is a million-row copy with the real table's indexes.

    Yields the engine and the names of the indexes on ``subscriptions``.
    """
    schema = f"explain_{uuid.uuid4().hex[:8]}"
    async with engine.begin() as conn:
        await conn.execute(text(f"CREATE SCHEMA {schema}"))
        # Unlogged and indexed after the load: the test measures plans, not write speed.
        for table in TABLES:
            await conn.execute(
                text(
                    f"CREATE UNLOGGED TABLE {schema}.{table} "
                    f"(LIKE public.{table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
                )
            )
        await conn.execute(text("SELECT setseed(0.42)"))
        await conn.execute(text("SET LOCAL maintenance_work_mem = '256MB'"))
        await conn.execute(text(FILL.format(schema=schema, today=TODAY.isoformat(), rows=ROWS)))
        await conn.execute(text(FILL_CUSTOMERS.format(schema=schema, rows=CUSTOMERS)))
        await conn.execute(text(FILL_RENEWALS.format(schema=schema)))
        definitions = list(
            await conn.execute(
                text(
                    "SELECT tablename, indexname, indexdef FROM pg_indexes "
                    "WHERE schemaname = 'public' AND tablename IN ('subscriptions', 'customers', 'renewals')"
                )
            )
        )
        indexes = {row.indexname for row in definitions if row.tablename == "subscriptions"}
        assert {"pk_subscriptions", "ix_subscriptions_due", "ix_subscriptions_status_next_renewal"} <= indexes
        for row in definitions:
            copied = row.indexdef.replace(f" ON public.{row.tablename} ", f" ON {schema}.{row.tablename} ")
            assert copied != row.indexdef
            await conn.execute(text(copied))
    async with engine.connect() as conn:
        autocommit = await conn.execution_options(isolation_level="AUTOCOMMIT")
        for table in TABLES:
            await autocommit.execute(text(f"VACUUM ANALYZE {schema}.{table}"))
    scoped = create_async_engine(
        database_url, poolclass=NullPool, connect_args={"server_settings": {"search_path": f"{schema},public"}}
    )
    try:
        async with scoped.connect() as conn:
            count = (await conn.execute(text("SELECT count(*) FROM subscriptions"))).scalar_one()
            assert count == ROWS
        yield scoped, indexes
    finally:
        await scoped.dispose()
        async with engine.begin() as conn:
            await conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))


def _nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", []):
        yield from _nodes(child)


async def _explained(engine: AsyncEngine, run: Callable[[AsyncSession], Awaitable[Any]]) -> list[tuple[str, Any]]:
    """EXPLAIN every statement ``run`` sends, with its parameters; (statement, plan) pairs."""
    captured: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, executemany: bool) -> None:
        captured.append((statement, parameters))

    async with engine.connect() as conn:
        event.listen(conn.sync_connection, "before_cursor_execute", capture)
        try:
            await run(AsyncSession(bind=conn))
        finally:
            event.remove(conn.sync_connection, "before_cursor_execute", capture)
        explained = []
        for statement, parameters in captured:
            raw = (await conn.exec_driver_sql(f"EXPLAIN (FORMAT JSON) {statement}", parameters)).scalar_one()
            plan = json.loads(raw) if isinstance(raw, str) else raw
            explained.append((statement, plan[0]["Plan"]))
    return explained


def _assert_indexed(statement: str, plan: dict[str, Any], indexes: set[str]) -> set[str]:
    """No sequential scan of subscriptions; the indexes of subscriptions the plan uses."""
    nodes = list(_nodes(plan))
    shown = f"\n{statement}\n{json.dumps(plan, indent=1)}"
    seq = [n for n in nodes if n["Node Type"] == "Seq Scan" and n.get("Relation Name") == "subscriptions"]
    assert not seq, f"sequential scan of subscriptions for{shown}"
    used = {n["Index Name"] for n in nodes if n["Node Type"] in INDEX_SCANS and n["Index Name"] in indexes}
    assert used, f"no index of subscriptions used for{shown}"
    return used


@pytest.mark.parametrize(
    ("window", "after"),
    [
        pytest.param((30, 60), None, id="a-month-first-page"),
        pytest.param((30, 60), 500_000, id="a-month-later-page"),
        pytest.param((7, 7), None, id="one-day"),
    ],
)
async def test_the_list_filter_on_status_and_renewal_window_uses_indexes(
    million: tuple[AsyncEngine, set[str]], window: tuple[int, int], after: int | None
) -> None:
    engine, indexes = million
    where = filters.compile_filter(
        filters.SubscriptionFilter(
            status=(SubscriptionStatus.ACTIVE,),
            next_renewal_from=TODAY + timedelta(days=window[0]),
            next_renewal_to=TODAY + timedelta(days=window[1]),
        )
    )
    cursor = encode_cursor(after) if after is not None else None

    async def list_page(session: AsyncSession) -> None:
        page = await fetch_page(session, S, where, 50, cursor)
        assert page.rows and page.total > len(page.rows)

    explained = await _explained(engine, list_page)
    assert len(explained) == 2  # the page and its total count
    used = set()
    for statement, plan in explained:
        assert "next_renewal_date" in statement and "status IN" in statement
        used |= _assert_indexed(statement, plan, indexes)
    count_statement, count_plan = explained[1]
    assert "count(" in count_statement
    assert "ix_subscriptions_status_next_renewal" in _assert_indexed(count_statement, count_plan, indexes)


async def test_the_renewal_workers_due_query_uses_the_due_index(
    million: tuple[AsyncEngine, set[str]], database_url: str
) -> None:
    from rebill.billing.engine import RenewalEngine
    from rebill.clock import Clock
    from rebill.config import Settings
    from rebill.services.runtime import Services

    engine, indexes = million
    now = datetime.combine(TODAY, time(9), tzinfo=UTC)
    worker = RenewalEngine(Services(engine, Settings(database_url=database_url), Clock(now)), batch_size=500)
    due = worker._due_query(now, 500, None, lock=True)  # the statement the worker claims a batch with

    async def due_batch(session: AsyncSession) -> None:
        rows = (await session.execute(due)).all()
        assert len(rows) == 500

    [(statement, plan)] = await _explained(engine, due_batch)
    assert "next_renewal_date" in statement and "ORDER BY subscriptions.next_renewal_date" in statement
    used = _assert_indexed(statement, plan, indexes)
    # ix_subscriptions_due (partial) gives the order the worker asks for; the planner may
    # also reach for the status index, a matter of cost estimates.
    assert used <= {"ix_subscriptions_due", "ix_subscriptions_status_next_renewal"}, used
    kinds = [(n["Node Type"], n.get("Relation Name")) for n in _nodes(plan)]
    assert "Sort" not in [kind for kind, _ in kinds], "the index gives the order: no sort of all due rows"
    # Nor a scan of all renewals (to find pending ones) or of all customers (for the emails).
    assert [relation for kind, relation in kinds if kind == "Seq Scan"] == [], kinds


SORT_INDEXES = {
    "ID": "pk_subscriptions",
    "CREATED_AT": "ix_subscriptions_order_created",
    "UPDATED_AT": "ix_subscriptions_order_updated",
    "NEXT_RENEWAL_DATE": "ix_subscriptions_order_next_renewal",
    "AMOUNT": "ix_subscriptions_order_amount",
}


@pytest.mark.parametrize("field", list(SORT_INDEXES))
@pytest.mark.parametrize("direction", ["ASC", "DESC"])
@pytest.mark.parametrize("where", ["from-the-start", "deep-cursor", "backwards"])
async def test_each_subscription_sort_pages_along_its_own_index(
    million: tuple[AsyncEngine, set[str]], field: str, direction: str, where: str
) -> None:
    """A page of any sort, at any depth and in either direction, reads 51 index entries: no sort of a million rows."""
    from rebill.resolvers.pages import encode
    from rebill.schema.ordering import OrderDirection, SubscriptionOrder, SubscriptionOrderField, subscription_order

    engine, indexes = million
    order = subscription_order(
        SubscriptionOrder(field=SubscriptionOrderField[field], direction=OrderDirection[direction])
    )
    cursor = None
    if where != "from-the-start":
        key = S.c.id if order.key is None else order.key
        async with engine.connect() as conn:
            middle = (await conn.execute(select_middle(key))).one()
        cursor = encode(order, middle.sort_key, middle.id)
    forwards = where != "backwards"

    async def list_page(session: AsyncSession) -> None:
        if forwards:
            page = await fetch_page(session, S, [], 50, cursor, order=order)
        else:
            page = await fetch_page(session, S, [], None, None, last=50, before=cursor, order=order)
        assert len(page.rows) == 50

    explained = await _explained(engine, list_page)
    statement, plan = explained[0]  # the page; the total count is the same for every sort
    assert "ORDER BY" in statement and "LIMIT" in statement
    used = _assert_indexed(statement, plan, indexes)
    assert SORT_INDEXES[field] in used, used
    assert "Sort" not in [n["Node Type"] for n in _nodes(plan)], f"the index gives the order:\n{statement}"


def select_middle(key: Any) -> Any:
    """The row half-way down the table in ``key`` order (its key and id): where a deep cursor points."""
    from sqlalchemy import select

    return select(key.label("sort_key"), S.c.id).order_by(key, S.c.id).offset(ROWS // 2).limit(1)


async def test_a_subscriptions_renewals_page_newest_first_uses_its_index(million: tuple[AsyncEngine, set[str]]) -> None:
    from rebill.resolvers.pages import NEWEST_FIRST, Window, fetch_grouped_pages

    engine, _ = million
    renewals = t.table_of(t.Renewal)

    async def pages(session: AsyncSession) -> None:
        keys = [(sid, Window(first=10), NEWEST_FIRST) for sid in range(1000, 1100)]
        await fetch_grouped_pages(session, renewals, renewals.c.subscription_id, keys)

    for statement, plan in await _explained(engine, pages):
        nodes = list(_nodes(plan))
        assert not [n for n in nodes if n["Node Type"] == "Seq Scan"], f"{statement}\n{json.dumps(plan, indent=1)}"
        assert any(n.get("Index Name") == "ix_renewals_subscription" for n in nodes), statement


@pytest.mark.parametrize(
    ("filter_", "index"),
    [
        pytest.param({"email_contains": "ustomer31415@"}, "ix_customers_email_trgm", id="email-contains"),
        pytest.param({"search": "customer 271828"}, "ix_customers_name_trgm", id="search-words"),
        pytest.param({"email": "Customer4242@Example.com"}, "ix_customers_email_lower", id="email"),
    ],
)
async def test_customer_lookups_use_their_indexes_over_400k_customers(
    million: tuple[AsyncEngine, set[str]], filter_: dict[str, str], index: str
) -> None:
    from rebill.resolvers.customers import C, customer_filter
    from rebill.schema.customers import CustomerFilter

    engine, _ = million

    async def lookup(session: AsyncSession) -> None:
        page = await fetch_page(session, C, customer_filter(CustomerFilter(**filter_)), 10, None)
        assert page.rows

    for statement, plan in await _explained(engine, lookup):  # the page and its count
        nodes = list(_nodes(plan))
        shown = f"{statement}\n{json.dumps(plan, indent=1)}"
        assert not [n for n in nodes if n["Node Type"] == "Seq Scan"], shown
        assert index in {n.get("Index Name") for n in nodes}, shown
