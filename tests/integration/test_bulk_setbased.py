"""A run moves next renewals without states (``bulk.setbased``) exactly as the domain moves them one by one.

Each plan runs twice on the same mixed data set, rebuilt from empty tables
so that ids, run ids and the clock are the same: once as runs work, once
with every subscription through the domain operation. Subscriptions, the
run's history entries and run items, the run's counters, and the rows after
a revert must be the same.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from sqlalchemy import select, text

from rebill.bulk import runner, setbased
from rebill.db import tables as t
from rebill.db.tables import TABLES
from tests.integration.test_bulk_preview import mixed_shop
from tests.integration.test_bulk_support import OPERATOR, Shop

S, H, ITEMS, RUNS = (t.table_of(x) for x in (t.Subscription, t.HistoryEntry, t.BulkRunItem, t.BulkRun))

PLANS = [
    {"segments": [{"name": "later", "actions": [{"shiftNextRenewal": {"unit": "DAY", "count": 14}}]}]},
    # some land before today (refused by the domain, with its message), trials end earlier
    {"segments": [{"name": "earlier", "actions": [{"shiftNextRenewal": {"unit": "DAY", "count": -20}}]}]},
    {
        "segments": [
            {
                "name": "trials",
                "when": {"inTrial": True},
                "actions": [{"shiftNextRenewal": {"unit": "WEEK", "count": 2}}],
            },
            {
                "name": "yearly",
                "when": {"status": ["ACTIVE"], "amountMin": "100.00"},
                "actions": [{"shiftNextRenewal": {"unit": "YEAR", "count": -1}}],
            },
            {"name": "cut", "when": {"amountMin": "30.00"}, "actions": [{"adjustPrice": {"percent": "-10"}}]},
            {"name": "months", "actions": [{"shiftNextRenewal": {"unit": "MONTH", "count": 1}}]},
        ]
    },
    {  # to a set date: the subscriptions already renewing on it change their anchor at most, through the domain
        "segments": [
            {
                "name": "past",
                "when": {"status": ["SUSPENDED"]},
                "actions": [{"setNextRenewalDate": {"date": "2026-01-01"}}],
            },
            {"name": "set", "actions": [{"setNextRenewalDate": {"date": "2026-02-15"}}]},
        ]
    },
    {"segments": [{"name": "two", "actions": [{"shiftNextRenewal": {"unit": "DAY", "count": 3}}, {"suspend": True}]}]},
]


@pytest.fixture
def settings(settings):
    """Chunks of 7: runs of several chunks, some with both paths in them."""
    return dataclasses.replace(settings, bulk_chunk_size=7)


async def _fresh(services: Any) -> tuple[Shop, dict[str, int]]:
    names = ", ".join(f'"{name}"' for name in TABLES)
    async with services.engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    shop, s = await mixed_shop(services)
    future = await shop.subscribe("12.00", start_days_ago=-10)
    late = await shop.subscribe("13.00", start_days_ago=25)
    return shop, {**s, "future": future, "late": late}


async def _rows(services: Any, table: Any, where: Any, order: Any) -> list[dict[str, Any]]:
    async with services.sessions() as session:
        return [dict(r._mapping) for r in await session.execute(select(table).where(where).order_by(*order))]


async def _outcome(services: Any, plan: dict[str, Any], *, set_based: bool, monkeypatch: Any) -> dict[str, Any]:
    moved: list[int] = []
    record = setbased.record

    def spy(row: Any, new: Any, segment: str) -> dict[str, Any]:
        moved.append(row["id"])
        return record(row, new, segment)

    with monkeypatch.context() as patch:
        patch.setattr(setbased, "record", spy)
        if not set_based:
            patch.setattr(runner.setbased, "date_move", lambda actions: None)
        shop, _ = await _fresh(services)
        run = await shop.run(plan)
        reverted = await shop.bulk.revert(OPERATOR, run.id)
    every = S.c.id > 0
    return {
        "moved without states": sorted(moved),
        "run": {k: getattr(run, k) for k in ("status", "processed", "applied", "skipped", "failed", "conflicts")},
        "subscriptions": await _rows(services, S, every, [S.c.id]),
        "history": [
            {k: v for k, v in row.items() if k != "id"}
            for row in await _rows(services, H, H.c.bulk_run_id == run.id, [H.c.subscription_id, H.c.id])
        ],
        "items": [
            {k: v for k, v in row.items() if k != "id"}
            for row in await _rows(services, ITEMS, ITEMS.c.run_id == run.id, [ITEMS.c.subscription_id])
        ],
        "reverted": (reverted.reverted, [(i.subscription_id, i.outcome) for i in reverted.not_reverted]),
    }


@pytest.mark.parametrize("plan", PLANS, ids=["days", "into-the-past", "mixed-segments", "set-date", "two-actions"])
async def test_a_run_moves_next_renewals_without_states_exactly_as_the_domain_does(services, monkeypatch, plan):
    in_sql = await _outcome(services, plan, set_based=True, monkeypatch=monkeypatch)
    by_domain = await _outcome(services, plan, set_based=False, monkeypatch=monkeypatch)
    assert by_domain["moved without states"] == []
    if plan is not PLANS[-1]:
        assert in_sql["moved without states"], "the plan moves some next renewals without states"
    for key in ("run", "history", "items", "reverted", "subscriptions"):
        assert in_sql[key] == by_domain[key], key


async def test_a_chunk_of_both_paths_writes_items_and_history_in_subscription_order(services):
    shop, _ = await _fresh(services)
    run = await shop.run(PLANS[2])
    items = await _rows(services, ITEMS, ITEMS.c.run_id == run.id, [ITEMS.c.id])
    assert [i["subscription_id"] for i in items] == sorted(i["subscription_id"] for i in items)
    history = await _rows(services, H, H.c.bulk_run_id == run.id, [H.c.id])
    assert [h["subscription_id"] for h in history] == sorted(h["subscription_id"] for h in history)
