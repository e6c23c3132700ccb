"""What-if runs, idempotency keys and optimistic concurrency on subscription mutations."""

from __future__ import annotations

import asyncio
from typing import Any

from sqlalchemy import text

from rebill.billing.engine import RenewalEngine
from tests.support import (
    add_card,
    error_codes,
    get_subscription,
    gql,
    history,
    make_customer,
    make_world,
    mutate,
    ok,
    subscribe,
)

COUNTED_TABLES = [
    "invoices",
    "invoice_lines",
    "credit_notes",
    "credit_note_lines",
    "subscriptions",
    "subscription_items",
    "applied_coupons",
    "renewals",
    "transactions",
    "history_entries",
    "outbox",
    "phases",
    "subscription_profiles",
    "sandbox_charges",
    "idempotency_records",
]


async def _fingerprint(engine) -> dict[str, Any]:
    """Row counts plus every subscription's version: anything written shows up here."""
    async with engine.connect() as conn:
        counts = {t: (await conn.execute(text(f"SELECT count(*) FROM {t}"))).scalar() for t in COUNTED_TABLES}
        versions = (await conn.execute(text("SELECT id, version, updated_at FROM subscriptions ORDER BY id"))).all()
        renewals = (
            await conn.execute(text("SELECT id, status, refunded_minor, fulfillment FROM renewals ORDER BY id"))
        ).all()
    return {"counts": counts, "versions": versions, "renewals": renewals}


async def _mutations_with_dry_run(client) -> set[str]:
    data = await gql(
        client,
        """{ __schema { mutationType { fields { name args { type { ofType { name inputFields { name } } } } } } } }""",
    )
    names = set()
    for f in data["__schema"]["mutationType"]["fields"]:
        input_type = f["args"][0]["type"]["ofType"] if f["args"] else None
        if input_type and any(i["name"] == "dryRun" for i in input_type["inputFields"] or []):
            names.add(f["name"])
    return names


async def test_every_mutation_with_dry_run_stores_nothing(client, services):
    world = await make_world(client)
    ok(
        await mutate(
            client,
            "createCoupon",
            {"code": "SAVE5", "amountOff": {"amount": "5.00", "currency": "USD"}},
            "coupon { id }",
        )
    )
    created = await subscribe(client, world)
    sub = created["subscription"]
    item = sub["items"][0]["id"]
    renewal = created["renewal"]["id"]
    ok(await mutate(client, "applyCoupon", {"subscriptionId": sub["id"], "code": "SAVE5"}, "subscription { id }"))
    phase = ok(
        await mutate(
            client,
            "updateSubscription",
            {"subscriptionId": sub["id"], "effectiveDate": "2026-06-01", "metadata": {"tier": "gold"}},
            "phase { id }",
        )
    )["phase"]["id"]
    failed = await subscribe(client, world)
    failed_renewal = failed["renewal"]["id"]
    ok(
        await mutate(
            client, "cancelSubscription", {"subscriptionId": failed["subscription"]["id"]}, "subscription { id }"
        )
    )
    declining = await make_customer(client, "declined@example.com")
    await add_card(client, declining, "4000000000000002")
    declined = await mutate(
        client,
        "createSubscription",
        {
            "customerId": declining,
            "profileId": world.profile,
            "items": [{"productId": world.product, "unitPrice": {"amount": "5.00", "currency": "USD"}}],
        },
        "renewal { status invoice { id status } }",
    )
    assert declined["renewal"]["invoice"]["status"] == "OPEN", declined
    open_invoice = declined["renewal"]["invoice"]["id"]
    paid_invoice = (await gql(client, "query($id: ID!) { renewal(id: $id) { invoice { id } } }", {"id": renewal}))[
        "renewal"
    ]["invoice"]["id"]
    drafting = (await subscribe(client, world))["subscription"]["id"]
    ok(
        await mutate(
            client,
            "updateInvoicing",
            {"subscriptionId": drafting, "draftInvoices": True, "draftDays": 3},
            "subscription { id }",
        )
    )
    ok(
        await mutate(
            client, "changeNextRenewalDate", {"subscriptionId": drafting, "date": "2026-01-15"}, "subscription { id }"
        )
    )
    await RenewalEngine(services).run_once()
    draft = await gql(client, "query { invoices(filter: {status: [DRAFT]}, first: 1) { edges { node { id } } } }")
    draft_id = draft["invoices"]["edges"][0]["node"]["id"]
    one_off = {"invoiceId": draft_id, "description": "Fee", "unitPrice": {"amount": "2.00", "currency": "USD"}}
    fee = ok(await mutate(client, "addInvoiceLine", one_off, "invoice { lines { id kind } }"))["invoice"]["lines"]
    fee_line = next(line["id"] for line in fee if line["kind"] == "ONE_OFF")
    ending = (await subscribe(client, world))["subscription"]["id"]
    scheduled = ok(
        await mutate(
            client,
            "cancelSubscription",
            {"subscriptionId": ending, "atPeriodEnd": True},
            "subscription { status cancelAtPeriodEnd }",
        )
    )
    assert scheduled["subscription"] == {"status": "ACTIVE", "cancelAtPeriodEnd": True}
    rates = [{"name": "Courier", "amount": {"amount": "9.00", "currency": "USD"}}]
    shipping = ok(
        await mutate(client, "createShippingProfile", {"name": "Courier", "rates": rates}, "shippingProfile { id }")
    )["shippingProfile"]["id"]
    contracted = (await subscribe(client, world))["subscription"]["id"]
    year = {"unit": "MONTH", "count": 12}
    ok(await mutate(client, "attachContract", {"subscriptionId": contracted, "term": year}, "subscription { id }"))

    s = {"subscriptionId": sub["id"]}
    usd = {"currency": "USD"}
    cases: dict[str, dict[str, Any]] = {
        "createSubscription": {
            "customerId": world.customer,
            "profileId": world.profile,
            "items": [{"productId": world.product, "unitPrice": {"amount": "9.99", **usd}, "quantity": 1}],
        },
        "changeNextRenewalDate": {**s, "shift": {"unit": "MONTH", "count": 2}},
        "updateItem": {**s, "itemId": item, "quantity": 3, "consentReference": "ok", "proration": "PRORATED"},
        "addItem": {
            **s,
            "productId": world.other_product,
            "unitPrice": {"amount": "1.00", **usd},
            "consentReference": "ok",
            "proration": "FULL",
        },
        "removeItem": {**s, "itemId": item},
        "applyCoupon": {**s, "code": "SAVE5"},
        "removeCoupon": {**s, "code": "SAVE5"},
        "changeProfile": {**s, "customProfile": {"name": "Custom", "cadence": {"unit": "WEEK", "count": 2}}},
        "changeProduct": {**s, "itemId": item, "productId": world.other_product, "consentReference": "ok"},
        "updateShippingAddress": {**s, "address": {"line1": "1 Main", "city": "Paris", "country": "FR"}},
        "setPaymentMethod": {**s, "paymentMethodId": world.card},
        "setGateway": {**s, "gatewayId": "sandbox-b", "mode": "FORCED"},
        "setRenewalType": {**s, "renewalType": "MANUAL"},
        "setEndDate": {**s, "endDate": "2030-01-01"},
        "setMetadata": {**s, "metadata": {"a": 1}},
        "updateSubscription": {**s, "nextRenewalDate": "2026-03-01", "renewalType": "MANUAL"},
        "updatePhase": {**s, "phaseId": phase, "effectiveDate": "2026-07-01"},
        "cancelPhase": {**s, "phaseId": phase},
        "suspendSubscription": s,
        "activateSubscription": s,
        "cancelSubscription": {**s, "refundLastRenewal": True, "cancelFulfillment": True},
        "renewNow": {**s, "mode": "RESTART"},
        "forceBill": s,
        "retryRenewal": {"renewalId": failed_renewal},
        "refundRenewal": {"renewalId": renewal, "amount": {"amount": "1.00", **usd}},
        "updateFulfillment": {"renewalId": renewal, "status": "SHIPPED"},
        "resumeSubscription": {"subscriptionId": ending},
        "voidInvoice": {"invoiceId": open_invoice, "reason": "goodwill"},
        "updateInvoicing": {**s, "purchaseOrder": "PO-1", "paymentTermsDays": 30},
        "finalizeInvoice": {"invoiceId": draft_id},
        "markInvoicePaid": {"invoiceId": open_invoice, "reference": "SEPA-1"},
        "refreshInvoice": {"invoiceId": draft_id},
        "deleteDraftInvoice": {"invoiceId": draft_id},
        "addInvoiceLine": one_off,
        "removeInvoiceLine": {"invoiceId": draft_id, "lineId": fee_line},
        "createCreditNote": {"invoiceId": paid_invoice, "amount": {"amount": "1.00", **usd}, "refund": True},
        "setShippingProfile": {**s, "shippingProfileId": shipping, "consentReference": "ok"},
        "attachContract": {**s, "term": year, "noticeDays": 30},
        "updateContract": {"subscriptionId": contracted, "noticeDays": 10},
        "removeContract": {"subscriptionId": contracted},
    }
    # A dry-run bulk run is meant to record its would-be outcomes (bulk tests check it changes no subscription).
    recorded_by_design = {"startBulkRun"}
    missing = await _mutations_with_dry_run(client) - set(cases) - recorded_by_design
    assert not missing, f"mutations with dryRun but no what-if test case: {missing}"

    before = await _fingerprint(services.engine)
    for name, data in cases.items():
        response = await client.post(
            "/graphql",
            json={
                "query": f"mutation($input: {name[0].upper()}{name[1:]}Input!) {{ {name}(input: $input) "
                "{ userErrors { code message } dryRun } }",
                "variables": {"input": {**data, "dryRun": True}},
            },
        )
        body = response.json()
        assert "errors" not in body, (name, body)
        assert body["data"][name]["dryRun"] is True, name
        assert await _fingerprint(services.engine) == before, f"{name} wrote something during a dry run"
        if name == "resumeSubscription":
            assert body["data"][name]["userErrors"] == [], "the what-if of a resumable subscription succeeds"
    assert (await get_subscription(client, ending))["cancelAtPeriodEnd"] is True, "still scheduled to cancel"


async def test_a_dry_run_shows_the_result_it_would_have(client):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    payload = ok(
        await mutate(
            client,
            "changeNextRenewalDate",
            {"subscriptionId": sub["id"], "date": "2026-04-01", "dryRun": True},
            "dryRun subscription { nextRenewalDate version }",
        )
    )
    assert payload["dryRun"] is True
    assert payload["subscription"]["nextRenewalDate"] == "2026-04-01"
    assert (await get_subscription(client, sub["id"]))["nextRenewalDate"] == sub["nextRenewalDate"]


async def test_a_retried_request_with_the_same_key_replays_without_acting_again(client):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    request = {"subscriptionId": sub["id"], "idempotencyKey": "force-bill-42"}
    selection = "replayed renewal { id } subscription { version nextRenewalDate }"
    first = ok(await mutate(client, "forceBill", request, selection))
    second = ok(await mutate(client, "forceBill", request, selection))
    assert first["replayed"] is False and second["replayed"] is True
    assert second["renewal"]["id"] == first["renewal"]["id"]
    assert second["subscription"] == first["subscription"]
    actions = [e["action"] for e in await history(client, sub["id"])]
    assert actions.count("force_billed") == 1


async def test_the_same_key_with_another_input_is_refused(client):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    ok(
        await mutate(
            client,
            "setMetadata",
            {"subscriptionId": sub["id"], "metadata": {"a": 1}, "idempotencyKey": "k1"},
            "subscription { id }",
        )
    )
    reused = await mutate(
        client,
        "setMetadata",
        {"subscriptionId": sub["id"], "metadata": {"a": 2}, "idempotencyKey": "k1"},
        "subscription { id }",
    )
    assert error_codes(reused) == ["IDEMPOTENCY_KEY_REUSED"]
    assert (await get_subscription(client, sub["id"]))["metadata"] == {"a": 1}


async def test_fifty_concurrent_identical_requests_with_one_key_act_once(client, services):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    request = {"subscriptionId": sub["id"], "idempotencyKey": "burst-1"}
    results = await asyncio.gather(
        *[mutate(client, "forceBill", request, "replayed renewal { id }") for _ in range(50)]
    )
    assert all(r["userErrors"] == [] for r in results)
    assert len({r["renewal"]["id"] for r in results}) == 1
    assert sum(1 for r in results if not r["replayed"]) == 1
    async with services.engine.connect() as conn:
        forced = (await conn.execute(text("SELECT count(*) FROM renewals WHERE kind = 'FORCED'"))).scalar()
        charges = (await conn.execute(text("SELECT count(*) FROM sandbox_charges"))).scalar()
    assert forced == 1
    assert charges == 2  # the initial charge and the one forced bill


async def test_a_stale_expected_version_is_refused_and_nothing_changes(client):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    ok(
        await mutate(
            client,
            "setMetadata",
            {"subscriptionId": sub["id"], "metadata": {"n": 1}, "expectedVersion": sub["version"]},
            "subscription { id }",
        )
    )
    stale = await mutate(
        client,
        "setMetadata",
        {"subscriptionId": sub["id"], "metadata": {"n": 2}, "expectedVersion": sub["version"]},
        "subscription { id }",
    )
    assert error_codes(stale) == ["VERSION_CONFLICT"]
    assert (await get_subscription(client, sub["id"]))["metadata"] == {"n": 1}


async def test_concurrent_updates_of_one_subscription_keep_both_changes(client):
    world = await make_world(client)
    ok(await mutate(client, "createCoupon", {"code": "TEN", "percentOff": "10"}, "coupon { id }"))
    sub = (await subscribe(client, world))["subscription"]
    moves = [
        mutate(client, "applyCoupon", {"subscriptionId": sub["id"], "code": "TEN"}, "subscription { id }"),
        mutate(
            client, "changeNextRenewalDate", {"subscriptionId": sub["id"], "date": "2026-05-05"}, "subscription { id }"
        ),
        mutate(client, "setMetadata", {"subscriptionId": sub["id"], "metadata": {"vip": True}}, "subscription { id }"),
    ]
    for payload in await asyncio.gather(*moves):
        ok(payload)
    final = await get_subscription(client, sub["id"])
    assert [c["code"] for c in final["coupons"]] == ["TEN"]
    assert final["nextRenewalDate"] == "2026-05-05"
    assert final["metadata"] == {"vip": True}
    assert final["version"] == sub["version"] + 3
