"""Bulk price actions judge consent on what the next renewal bills, and keep the consent they were given."""

from sqlalchemy import select

from rebill.bulk.runner import process_queued_runs
from rebill.db import tables as t
from rebill.domain.money import Money
from rebill.domain.proration import Proration
from rebill.domain.updates import Effective
from tests.integration.test_bulk_support import ADMIN, Shop
from tests.support import gql, make_world, mutate, ok, subscribe

ITEMS = t.table_of(t.BulkRunItem)


async def with_pending_price(shop: Shop, price: str, scheduled: str, consent: str | None) -> int:
    """A subscription at ``price`` whose next renewal bills ``scheduled``."""
    sid = await shop.subscribe(price)
    state = await shop.state(sid)
    await shop.do(
        "update_item",
        sid,
        item_id=state.items[0].id,
        unit_price=Money.parse(scheduled, "USD"),
        quantity=None,
        effective=Effective.NEXT_RENEWAL,
        proration=Proration.NONE,
        consent_reference=consent,
    )
    return sid


def percent(value: str, consent: str | None = None) -> dict:
    params = {"percent": value} | ({"consentReference": consent} if consent else {})
    return {"segments": [{"name": "all", "actions": [{"adjustPrice": params}]}]}


async def test_a_ten_percent_rise_keeps_a_consented_pending_rise_and_raises_it_too(services):
    shop = await Shop(services).open()
    rising = await with_pending_price(shop, "10.00", "12.00", "phone call 2026-01-10")

    preview = await shop.bulk.preview(percent("10"), sample=1)
    refused = preview.segments[0]
    assert [(r.code, r.count) for r in refused.refusals] == [("CONSENT_REQUIRED", 1)]
    assert "12.00" in refused.refusals[0].message and "13.20" in refused.refusals[0].message

    consented = percent("10", "price letter of 2026-01-12")
    preview = await shop.bulk.preview(consented, sample=1)
    segment = preview.segments[0]
    assert (segment.billed_before, segment.billed_after, segment.refused) == ({"USD": 1200}, {"USD": 1320}, 0)
    run = await shop.run(consented)
    assert (run.status, run.applied) == ("COMPLETED", 1)
    after = await shop.state(rising)
    item = after.items[0]
    assert (item.unit_price.amount_str, item.pending_unit_price, after.amount.amount_str) == (
        "11.00",
        Money(1320, "USD"),
        "13.20",
    )

    await shop.bulk.revert(ADMIN, run.id)  # and a revert puts the consented rise back as it was
    restored = (await shop.state(rising)).items[0]
    assert (restored.unit_price.amount_str, restored.pending_unit_price) == ("10.00", Money(1200, "USD"))


async def test_a_ten_percent_cut_on_a_pending_cut_needs_no_consent(services):
    shop = await Shop(services).open()
    falling = await with_pending_price(shop, "10.00", "8.00", None)

    preview = await shop.bulk.preview(percent("-10"), sample=1)
    segment = preview.segments[0]
    assert (segment.billed_before, segment.billed_after, segment.refused) == ({"USD": 800}, {"USD": 720}, 0)
    run = await shop.run(percent("-10"))
    assert (run.applied, run.skipped) == (1, 0)
    after = await shop.state(falling)
    assert (after.items[0].unit_price.amount_str, after.amount.amount_str) == ("9.00", "7.20")


async def test_the_consent_of_a_price_action_is_stored_on_each_run_item_and_history_entry(services):
    shop = await Shop(services).open()
    ids = [await shop.subscribe(p) for p in ("10.00", "20.00")]
    run = await shop.run(percent("5", "customer e-mails of 2026-01-14"))
    assert run.applied == 2
    async with services.sessions() as session:
        items = list(await session.execute(select(ITEMS).where(ITEMS.c.run_id == run.id)))
    assert {i.subscription_id: i.consent_reference for i in items} == dict.fromkeys(
        ids, "customer e-mails of 2026-01-14"
    )
    for sid in ids:
        entry = (await shop.history(sid))[-1]
        assert (entry.bulk_run_id, entry.consent_reference) == (run.id, "customer e-mails of 2026-01-14")
    page = await shop.bulk.items(run.id, first=10, after=None, outcome="APPLIED")
    assert {i.consent_reference for i in page.items} == {"customer e-mails of 2026-01-14"}

    moved = await shop.run(
        {"segments": [{"name": "all", "actions": [{"shiftNextRenewal": {"unit": "DAY", "count": 1}}]}]}
    )
    entry = (await shop.history(ids[0]))[-1]
    assert (entry.bulk_run_id, entry.consent_reference) == (moved.id, None)


async def test_a_full_run_after_a_trial_run_with_another_consent_reference_raises_nobody_twice(services):
    shop = await Shop(services).open()
    ids = [await shop.subscribe("10.00") for _ in range(3)]
    trial = await shop.run(percent("10", "letters, first batch"), limit=1)
    full = await shop.run(percent("10", "letters, all customers"))
    assert (trial.applied, full.applied) == (1, 2)
    assert [(await shop.state(i)).amount.amount_str for i in ids] == ["11.00"] * 3
    assert [(await shop.history(i))[-1].consent_reference for i in ids] == [
        "letters, first batch",
        "letters, all customers",
        "letters, all customers",
    ]


async def test_a_bulk_run_item_shows_its_consent_reference_over_graphql(client, services):
    world = await make_world(client)
    await subscribe(client, world, "10.00")
    plan = percent("5", "signed addendum #41")
    started = ok(await mutate(client, "startBulkRun", {"plan": plan}, "run { id }"))["run"]
    await process_queued_runs(services)
    run = (
        await gql(
            client,
            "query($id: ID!) { bulkRun(id: $id) { applied items(first: 5) { edges { node { outcome consentReference } } } } }",
            {"id": started["id"]},
        )
    )["bulkRun"]
    assert run["applied"] == 1
    assert [e["node"] for e in run["items"]["edges"]] == [
        {"outcome": "APPLIED", "consentReference": "signed addendum #41"}
    ]
