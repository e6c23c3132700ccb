"""Contract terms through the API (DOMAIN.md "Contract terms"): attach, update, remove, the worker at a
term's end, cancellations during a term, overrides with their early termination fee.

Every subscription here is monthly from 2026-01-15 (the default clock); the dates asserted are worked
out by hand from that anchor.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from rebill.billing.engine import RenewalEngine
from tests.api.test_portal import browser  # noqa: F401  (the portal's browser fixture)
from tests.support import (
    add_card,
    change,
    error_codes,
    gql,
    history,
    make_world,
    mutate,
    ok,
    subscribe,
)

DECLINED = "4000000000000002"

CONTRACT = """contract { startDate endDate term { unit count } noticeDays actionAtTermEnd
  earlyTerminationFee { amount currency } cancellationEffectiveDate }"""
SUB = f"id status version nextRenewalDate endDate cancelAtPeriodEnd cancellationDate {CONTRACT}"
INVOICE = """id number status total { amount } amountDue { amount }
  lines { kind description amount { amount } quantity unitPrice { amount } }"""


def at(day: str) -> datetime:
    return datetime.fromisoformat(day).replace(hour=9, tzinfo=UTC)


async def subscription(client, sub_id: str) -> dict[str, Any]:
    data = await gql(client, f"query($id: ID!) {{ subscription(id: $id) {{ {SUB} }} }}", {"id": sub_id})
    sub: dict[str, Any] = data["subscription"]
    return sub


async def attach(client, sub_id: str, **terms: Any) -> dict[str, Any]:
    data = {"subscriptionId": sub_id, "term": {"unit": "MONTH", "count": 12}, **terms}
    return await mutate(client, "attachContract", data, f"subscription {{ {SUB} }} dryRun")


async def under_contract(client, world: Any = None, **terms: Any) -> tuple[Any, str]:
    world = world or await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    ok(await attach(client, sub["id"], **terms))
    return world, sub["id"]


async def run_worker(services, clock, day: str) -> None:
    clock.set(at(day))
    await RenewalEngine(services).run_once()


async def events(client, sub_id: str) -> list[str]:
    data = await gql(
        client,
        """query($id: ID!) { notifications(subscriptionId: $id, first: 100) { edges { node { kind } } } }""",
        {"id": sub_id},
    )
    return [e["node"]["kind"] for e in data["notifications"]["edges"]]


# -- attach, update, remove --------------------------------------------------------------


async def test_a_contract_is_attached_updated_and_removed_each_in_the_history(client, services):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]

    preview = ok(await attach(client, sub["id"], noticeDays=30, dryRun=True))
    assert preview["dryRun"] and preview["subscription"]["contract"]["endDate"] == "2027-01-15"
    assert (await subscription(client, sub["id"]))["contract"] is None, "a dry run stores nothing"

    attached = ok(
        await attach(
            client,
            sub["id"],
            noticeDays=30,
            actionAtTermEnd="RENEW",
            earlyTerminationFee={"amount": "100.00", "currency": "USD"},
            reason="signed for a year",
        )
    )["subscription"]
    assert attached["contract"] == {
        "startDate": "2026-01-15",
        "endDate": "2027-01-15",
        "term": {"unit": "MONTH", "count": 12},
        "noticeDays": 30,
        "actionAtTermEnd": "RENEW",
        "earlyTerminationFee": {"amount": "100.00", "currency": "USD"},
        # Given today, long before the notice period (from 2026-12-16): at the term's end.
        "cancellationEffectiveDate": "2027-01-15",
    }
    again = await attach(client, sub["id"])
    assert error_codes(again) == ["CONTRACT_EXISTS"]

    # 45 days from Jan 15 is Mar 1, inside the period Feb 15 to Mar 15: the term ends with that period.
    updated = ok(
        await mutate(
            client,
            "updateContract",
            {"subscriptionId": sub["id"], "term": {"unit": "DAY", "count": 45}, "earlyTerminationFee": None},
            f"subscription {{ {SUB} }}",
        )
    )["subscription"]
    assert updated["contract"]["endDate"] == "2026-03-15"
    assert updated["contract"]["noticeDays"] == 30, "fields left out keep their value"
    assert updated["contract"]["earlyTerminationFee"] is None

    removed = ok(await mutate(client, "removeContract", {"subscriptionId": sub["id"]}, f"subscription {{ {SUB} }}"))[
        "subscription"
    ]
    assert removed["contract"] is None
    assert error_codes(
        await mutate(client, "removeContract", {"subscriptionId": sub["id"]}, "subscription { id }")
    ) == ["NO_CONTRACT"]

    entries = await history(client, sub["id"])
    actions = [e["action"] for e in entries]
    assert actions[-3:] == ["contract_attached", "contract_updated", "contract_removed"]
    attached_entry = entries[-3]
    assert attached_entry["reason"] == "signed for a year"
    assert change(attached_entry, "contract") == (
        None,
        {
            "startDate": "2026-01-15",
            "endDate": "2027-01-15",
            "term": "12 MONTH",
            "noticeDays": 30,
            "actionAtTermEnd": "RENEW",
            "earlyTerminationFee": "100.00",
        },
    )
    assert change(entries[-1], "contract")[1] is None
    kinds = await events(client, sub["id"])
    for kind in ("SUBSCRIPTION_CONTRACT_ATTACHED", "SUBSCRIPTION_CONTRACT_UPDATED", "SUBSCRIPTION_CONTRACT_REMOVED"):
        assert kind in kinds


async def test_a_contract_is_refused_a_fee_in_another_currency_and_a_term_already_over(client, services):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    fee = await attach(client, sub["id"], earlyTerminationFee={"amount": "10.00", "currency": "EUR"})
    assert error_codes(fee) == ["CURRENCY_MISMATCH"]
    over = await attach(client, sub["id"], term={"unit": "MONTH", "count": 1}, startDate="2025-06-15")
    assert error_codes(over) == ["INVALID_CONTRACT"]
    assert error_codes(await attach(client, sub["id"], noticeDays=-1)) == ["INVALID_CONTRACT"]


# -- the worker at a term's end ---------------------------------------------------------------


async def renewals(client, sub_id: str) -> list[dict[str, Any]]:
    data = await gql(
        client,
        """query($id: ID!) { subscription(id: $id) { renewals(first: 50, orderBy: {direction: ASC}) {
            edges { node { id cycle status adjustment periodStart periodEnd } } } } }""",
        {"id": sub_id},
    )
    return [e["node"] for e in data["subscription"]["renewals"]["edges"]]


async def test_a_renewing_contract_starts_a_new_term_of_the_same_length_at_each_end(client, services, clock):
    _, sub_id = await under_contract(client, term={"unit": "MONTH", "count": 3})
    assert (await subscription(client, sub_id))["contract"]["endDate"] == "2026-04-15"

    for day in ("2026-02-15", "2026-03-15", "2026-04-15"):
        await run_worker(services, clock, day)
    renewed = await subscription(client, sub_id)
    assert renewed["status"] == "ACTIVE" and renewed["nextRenewalDate"] == "2026-05-15"
    assert (renewed["contract"]["startDate"], renewed["contract"]["endDate"]) == ("2026-04-15", "2026-07-15")

    await run_worker(services, clock, "2026-07-20")  # the periods of May, June and July caught up late
    again = await subscription(client, sub_id)
    assert (again["contract"]["startDate"], again["contract"]["endDate"]) == ("2026-07-15", "2026-10-15")
    assert [r["cycle"] for r in await renewals(client, sub_id)] == [1, 2, 3, 4, 5, 6, 7]

    entries = [e for e in await history(client, sub_id) if e["action"] == "contract_renewed"]
    assert [e["actor"] for e in entries] == ["renewal-engine", "renewal-engine"]
    assert change(entries[0], "contract")[1]["endDate"] == "2026-07-15"
    assert (await events(client, sub_id)).count("SUBSCRIPTION_CONTRACT_RENEWED") == 2

    await run_worker(services, clock, "2026-07-20")
    assert len([e for e in await history(client, sub_id) if e["action"] == "contract_renewed"]) == 2, "once"


async def test_an_evergreen_contract_ends_and_billing_goes_on(client, services, clock):
    _, sub_id = await under_contract(client, term={"unit": "MONTH", "count": 2}, actionAtTermEnd="EVERGREEN")
    for day in ("2026-02-15", "2026-03-15"):
        await run_worker(services, clock, day)
    after = await subscription(client, sub_id)
    assert after["contract"] is None
    assert (after["status"], after["nextRenewalDate"]) == ("ACTIVE", "2026-04-15")
    assert [r["cycle"] for r in await renewals(client, sub_id)] == [1, 2, 3]
    assert "SUBSCRIPTION_CONTRACT_ENDED" in await events(client, sub_id)


async def test_a_contract_that_cancels_at_its_end_bills_its_last_period_and_no_more(client, services, clock):
    _, sub_id = await under_contract(client, term={"unit": "MONTH", "count": 2}, actionAtTermEnd="CANCEL")
    for day in ("2026-02-15", "2026-03-15", "2026-04-15"):
        await run_worker(services, clock, day)
    after = await subscription(client, sub_id)
    assert (after["status"], after["nextRenewalDate"]) == ("CANCELLED", None)
    assert [r["cycle"] for r in await renewals(client, sub_id)] == [1, 2], "nothing billed from the term's end"
    assert [e["action"] for e in await history(client, sub_id)][-1] == "cancelled_at_term_end"


# -- cancellations during a term ------------------------------------------------------------------


async def test_a_cancellation_before_the_notice_period_takes_effect_at_the_term_end(client, services, clock):
    # Twelve months from Jan 15, 2026 with 30 days' notice: the notice period starts on Dec 16, 2026.
    _, sub_id = await under_contract(client, noticeDays=30)
    refused = await mutate(client, "cancelSubscription", {"subscriptionId": sub_id}, "subscription { id }")
    assert error_codes(refused) == ["CONTRACT_COMMITMENT"]

    clock.set(at("2026-12-15"))
    scheduled = ok(
        await mutate(
            client, "cancelSubscription", {"subscriptionId": sub_id, "atPeriodEnd": True}, f"subscription {{ {SUB} }}"
        )
    )["subscription"]
    assert scheduled["status"] == "ACTIVE"
    assert scheduled["cancellationDate"] == "2027-01-15"
    assert scheduled["cancelAtPeriodEnd"] is False, "the next periods are billed until then"
    entry = (await history(client, sub_id))[-1]
    assert (entry["action"], change(entry, "cancellationDate")) == ("cancel_scheduled", (None, "2027-01-15"))

    resumed = ok(await mutate(client, "resumeSubscription", {"subscriptionId": sub_id}, f"subscription {{ {SUB} }}"))[
        "subscription"
    ]
    assert resumed["cancellationDate"] is None
    assert change((await history(client, sub_id))[-1], "cancellationDate") == ("2027-01-15", None)


async def test_a_cancellation_inside_the_notice_period_waits_for_the_end_of_the_next_term(client, services, clock):
    world, renewing = await under_contract(client, noticeDays=30)
    _, evergreen = await under_contract(client, world, noticeDays=30, actionAtTermEnd="EVERGREEN")
    clock.set(at("2026-12-16"))  # the first day of the notice period
    effective = await subscription(client, renewing)
    assert effective["contract"]["cancellationEffectiveDate"] == "2028-01-15"
    assert (await subscription(client, evergreen))["contract"]["cancellationEffectiveDate"] == "2027-01-15"
    scheduled = ok(
        await mutate(
            client, "cancelSubscription", {"subscriptionId": renewing, "atPeriodEnd": True}, f"subscription {{ {SUB} }}"
        )
    )["subscription"]
    assert scheduled["cancellationDate"] == "2028-01-15"


async def test_a_scheduled_cancellation_takes_effect_on_its_date(client, services, clock):
    # Two months from Jan 15 with 10 days' notice: given on Jan 20, it takes effect on Mar 15.
    _, sub_id = await under_contract(client, term={"unit": "MONTH", "count": 2}, noticeDays=10)
    clock.set(at("2026-01-20"))
    ok(
        await mutate(
            client, "cancelSubscription", {"subscriptionId": sub_id, "atPeriodEnd": True}, "subscription { id }"
        )
    )
    for day in ("2026-02-15", "2026-03-14"):
        await run_worker(services, clock, day)
    assert (await subscription(client, sub_id))["status"] == "ACTIVE"
    await run_worker(services, clock, "2026-03-15")
    after = await subscription(client, sub_id)
    assert after["status"] == "CANCELLED"
    assert [r["cycle"] for r in await renewals(client, sub_id)] == [1, 2]
    cancelled = [e for e in await history(client, sub_id) if e["action"] == "cancelled_as_scheduled"]
    assert [e["actor"] for e in cancelled] == ["renewal-engine"]


async def test_a_customer_cancelling_in_the_portal_is_told_when_it_takes_effect(client, services):
    world, sub_id = await under_contract(client, term={"unit": "MONTH", "count": 6})
    session = ok(await mutate(client, "createCustomerPortalSession", {"customerId": world.customer}, "token"))
    import httpx

    from rebill.app import create_app

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=create_app(services)),
        base_url="http://rebill.test",
        headers={"Authorization": f"Bearer {session['token']}"},
    ) as customer:
        refused = await mutate(
            customer, "cancelSubscription", {"subscriptionId": sub_id, "overrideContract": True}, "subscription { id }"
        )
        assert error_codes(refused) == ["FORBIDDEN"]
        scheduled = ok(
            await mutate(
                customer, "cancelSubscription", {"subscriptionId": sub_id}, "subscription { cancellationDate }"
            )
        )
    assert scheduled["subscription"]["cancellationDate"] == "2026-07-15"
    assert (await subscription(client, sub_id))["status"] == "ACTIVE"


# -- overrides and their fee -----------------------------------------------------------------------


async def cancel_now(client, sub_id: str, **extra: Any) -> dict[str, Any]:
    return await mutate(
        client,
        "cancelSubscription",
        {"subscriptionId": sub_id, "overrideContract": True, **extra},
        f"subscription {{ {SUB} }} invoice {{ {INVOICE} }}",
    )


async def test_an_override_cancels_now_and_bills_the_fee_on_an_invoice_of_its_own(client, services):
    fee = {"amount": "100.00", "currency": "USD"}
    _, sub_id = await under_contract(client, earlyTerminationFee=fee)
    what_if = ok(await cancel_now(client, sub_id, dryRun=True))
    assert what_if["subscription"]["status"] == "CANCELLED" and what_if["invoice"] is None
    assert (await subscription(client, sub_id))["status"] == "ACTIVE"

    cancelled = ok(await cancel_now(client, sub_id))
    assert cancelled["subscription"]["status"] == "CANCELLED"
    invoice = cancelled["invoice"]
    assert (invoice["status"], invoice["total"], invoice["amountDue"]) == (
        "PAID",
        {"amount": "100.00"},
        {"amount": "0.00"},
    )
    [line] = invoice["lines"]
    assert (line["kind"], line["amount"], line["quantity"]) == ("FEE", {"amount": "100.00"}, 1)
    assert line["description"] == "Early termination fee (contract until 2027-01-15)"
    assert invoice["number"] == "INV-2026-000002", "numbered after the first period's invoice"
    [_, fee_renewal] = await renewals(client, sub_id)
    assert fee_renewal["adjustment"] and fee_renewal["status"] == "PAID"


async def test_a_declined_fee_leaves_its_invoice_unpaid_and_the_subscription_cancelled(client, services):
    world, sub_id = await under_contract(client, earlyTerminationFee={"amount": "80.00", "currency": "USD"})
    declining = await add_card(client, world.customer, DECLINED, default=False)
    ok(
        await mutate(
            client, "setPaymentMethod", {"subscriptionId": sub_id, "paymentMethodId": declining}, "subscription { id }"
        )
    )
    cancelled = ok(await cancel_now(client, sub_id))
    assert cancelled["subscription"]["status"] == "CANCELLED"
    invoice = cancelled["invoice"]
    assert invoice["lines"][0]["kind"] == "FEE"
    assert invoice["status"] in ("OPEN", "UNCOLLECTIBLE"), invoice["status"]
    assert invoice["amountDue"] == {"amount": "80.00"}
    [_, fee_renewal] = await renewals(client, sub_id)
    assert fee_renewal["status"] == "FAILED"


async def test_an_override_without_a_fee_bills_nothing(client, services):
    _, sub_id = await under_contract(client)
    cancelled = ok(await cancel_now(client, sub_id))
    assert cancelled["invoice"] is None
    assert len(await renewals(client, sub_id)) == 1


async def test_an_end_date_before_the_term_end_is_refused_unless_overridden(client, services):
    _, sub_id = await under_contract(client, earlyTerminationFee={"amount": "25.00", "currency": "USD"})
    selection = f"subscription {{ {SUB} }} invoice {{ {INVOICE} }}"
    early = {"subscriptionId": sub_id, "endDate": "2026-06-15"}
    assert error_codes(await mutate(client, "setEndDate", early, selection)) == ["CONTRACT_COMMITMENT"]
    at_term_end = ok(await mutate(client, "setEndDate", {**early, "endDate": "2027-01-15"}, selection))
    assert at_term_end["subscription"]["endDate"] == "2027-01-15" and at_term_end["invoice"] is None
    overridden = ok(await mutate(client, "setEndDate", {**early, "overrideContract": True}, selection))
    assert overridden["subscription"]["endDate"] == "2026-06-15"
    assert overridden["subscription"]["contract"] is None
    assert [line["kind"] for line in overridden["invoice"]["lines"]] == ["FEE"]


async def test_a_bulk_cancel_is_refused_under_contract_unless_overridden(client, services):
    from rebill.bulk.runner import process_queued_runs

    _, sub_id = await under_contract(client)
    items = "items(first: 10) { edges { node { outcome code } } }"

    async def run(cancel: Any) -> list[dict[str, Any]]:
        plan = {"filter": {"ids": [sub_id]}, "segments": [{"name": "all", "actions": [{"cancel": cancel}]}]}
        run = ok(await mutate(client, "startBulkRun", {"plan": plan}, "run { id }"))["run"]
        await process_queued_runs(services)
        data = await gql(client, f"query($id: ID!) {{ bulkRun(id: $id) {{ {items} }} }}", {"id": run["id"]})
        return [e["node"] for e in data["bulkRun"]["items"]["edges"]]

    [refused] = await run({"atPeriodEnd": False})
    assert refused["code"] == "CONTRACT_COMMITMENT"
    assert (await subscription(client, sub_id))["status"] == "ACTIVE"
    await run({"atPeriodEnd": False, "overrideContract": True})
    assert (await subscription(client, sub_id))["status"] == "CANCELLED"


async def test_a_product_change_under_contract_moves_the_contract_to_the_replacement(client, services):
    world, sub_id = await under_contract(client, noticeDays=30)
    [item] = (await gql(client, "query($id: ID!) { subscription(id: $id) { items { id } } }", {"id": sub_id}))[
        "subscription"
    ]["items"]
    data = {"subscriptionId": sub_id, "itemId": item["id"], "productId": world.other_product}
    selection = f"subscription {{ {SUB} }} replaced {{ {SUB} }}"
    assert error_codes(await mutate(client, "changeProduct", data, selection)) == ["CONTRACT_COMMITMENT"]
    changed = ok(await mutate(client, "changeProduct", {**data, "overrideContract": True}, selection))
    assert changed["replaced"]["contract"] is None and changed["replaced"]["status"] == "CANCELLED"
    moved = changed["subscription"]["contract"]
    assert (moved["startDate"], moved["endDate"], moved["noticeDays"]) == ("2026-01-15", "2027-01-15", 30)
    assert (await subscription(client, changed["subscription"]["id"]))["contract"] == moved


async def test_dunning_cancels_a_subscription_under_contract_and_bills_no_fee(client, services, clock):
    world, sub_id = await under_contract(client, earlyTerminationFee={"amount": "100.00", "currency": "USD"})
    declining = await add_card(client, world.customer, DECLINED, default=False)
    ok(
        await mutate(
            client, "setPaymentMethod", {"subscriptionId": sub_id, "paymentMethodId": declining}, "subscription { id }"
        )
    )
    for day in ("2026-02-15", "2026-02-20", "2026-02-25"):
        await run_worker(services, clock, day)
    assert (await subscription(client, sub_id))["status"] == "CANCELLED"
    assert not any(r["adjustment"] for r in await renewals(client, sub_id)), "no fee is billed"


async def test_the_portal_shows_the_contract_and_when_a_cancellation_takes_effect(client, services, browser):  # noqa: F811
    from tests.api.test_portal import pk_of, portal_link, sign_in, submit

    world, sub_id = await under_contract(client, term={"unit": "MONTH", "count": 6})
    await sign_in(browser, (await portal_link(client, world.customer, flow="CANCEL"))["url"])
    page = (await browser.get(f"/portal/subscriptions/{pk_of(sub_id)}")).text
    assert "Until July 15, 2026" in page
    assert "if you cancel today, your cancellation takes effect on\n    July 15, 2026" in page
    done = await submit(browser, pk_of(sub_id), "cancel")
    shown = (await browser.get(done.headers["location"])).text
    assert "it takes effect on July 15, 2026" in shown
    assert "Takes effect on July 15, 2026" in shown
    assert (await subscription(client, sub_id))["cancellationDate"] == "2026-07-15"
