"""Global updates (seed 001): many settings at once, or later as a phase."""

from __future__ import annotations

from datetime import UTC, datetime

from rebill.billing.engine import RenewalEngine
from tests.support import (
    SUBSCRIPTION_FIELDS,
    change,
    error_codes,
    get_subscription,
    gql,
    history,
    make_world,
    mutate,
    ok,
    subscribe,
)

PHASES = "query($id: ID!) { subscription(id: $id) { phases { id effectiveDate status changes } } }"


async def test_a_global_update_changes_everything_at_once_in_one_history_entry(client, clock):
    clock.set(datetime(2026, 1, 15, 9, tzinfo=UTC))
    world = await make_world(client)
    ok(
        await mutate(
            client,
            "createCoupon",
            {"code": "WELCOME", "amountOff": {"amount": "2.00", "currency": "USD"}},
            "coupon { id }",
        )
    )
    sub = (await subscribe(client, world, price="20.00"))["subscription"]
    payload = ok(
        await mutate(
            client,
            "updateSubscription",
            {
                "subscriptionId": sub["id"],
                "nextRenewalDate": "2026-03-01",
                "items": [{"itemId": sub["items"][0]["id"], "unitPrice": {"amount": "18.00", "currency": "USD"}}],
                "applyCoupons": ["WELCOME"],
                "gatewayId": "sandbox-b",
                "gatewayMode": "PREFERRED",
                "metadata": {"segment": "smb"},
                "reason": "annual review",
            },
            f"subscription {{ {SUBSCRIPTION_FIELDS} }} phase {{ id }}",
        )
    )
    updated = payload["subscription"]
    assert payload["phase"] is None
    assert updated["nextRenewalDate"] == "2026-03-01"
    assert updated["amount"]["amount"] == "16.00"
    assert updated["gatewayMode"] == "PREFERRED"
    assert updated["metadata"] == {"segment": "smb"}
    last = (await history(client, sub["id"]))[-1]
    assert last["action"] == "updated" and last["reason"] == "annual review"
    fields = {c["field"] for c in last["changes"]}
    assert {"nextRenewalDate", "amount", "coupons", "gatewayId", "gatewayMode", "metadata"} <= fields


async def test_one_refused_setting_refuses_the_whole_update(client):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    payload = await mutate(
        client,
        "updateSubscription",
        {"subscriptionId": sub["id"], "metadata": {"x": 1}, "nextRenewalDate": "2020-01-01"},
        "subscription { id }",
    )
    assert error_codes(payload) == ["DATE_IN_PAST"]
    assert (await get_subscription(client, sub["id"]))["metadata"] is None


async def test_a_future_update_becomes_a_phase_that_can_be_edited_or_dropped(client, clock):
    clock.set(datetime(2026, 1, 15, 9, tzinfo=UTC))
    world = await make_world(client)
    sub = (await subscribe(client, world, price="20.00"))["subscription"]
    scheduled = ok(
        await mutate(
            client,
            "updateSubscription",
            {
                "subscriptionId": sub["id"],
                "effectiveDate": "2026-04-01",
                "items": [{"itemId": sub["items"][0]["id"], "unitPrice": {"amount": "25.00", "currency": "USD"}}],
                "consentReference": "contract renewal signed 2026-01-14",
            },
            "subscription { amount { amount } } phase { id effectiveDate status }",
        )
    )
    assert scheduled["subscription"]["amount"]["amount"] == "20.00"  # nothing changes until April
    phase = scheduled["phase"]
    assert (phase["effectiveDate"], phase["status"]) == ("2026-04-01", "PENDING")
    listed = (await gql(client, PHASES, {"id": sub["id"]}))["subscription"]["phases"]
    assert [p["id"] for p in listed] == [phase["id"]]
    assert (await history(client, sub["id"]))[-1]["action"] == "phase_scheduled"

    moved = ok(
        await mutate(
            client,
            "updatePhase",
            {"subscriptionId": sub["id"], "phaseId": phase["id"], "effectiveDate": "2026-05-01"},
            "phase { effectiveDate }",
        )
    )
    assert moved["phase"]["effectiveDate"] == "2026-05-01"
    ok(
        await mutate(
            client, "cancelPhase", {"subscriptionId": sub["id"], "phaseId": phase["id"]}, "subscription { id }"
        )
    )
    listed = (await gql(client, PHASES, {"id": sub["id"]}))["subscription"]["phases"]
    assert [p["status"] for p in listed] == ["CANCELLED"]
    again = await mutate(
        client,
        "updatePhase",
        {"subscriptionId": sub["id"], "phaseId": phase["id"], "effectiveDate": "2026-06-01"},
        "phase { id }",
    )
    assert error_codes(again) == ["PHASE_STARTED"]


async def test_a_future_price_increase_without_consent_is_refused_when_scheduled(client):
    world = await make_world(client)
    sub = (await subscribe(client, world, price="20.00"))["subscription"]
    payload = await mutate(
        client,
        "updateSubscription",
        {
            "subscriptionId": sub["id"],
            "effectiveDate": "2026-04-01",
            "items": [{"itemId": sub["items"][0]["id"], "unitPrice": {"amount": "25.00", "currency": "USD"}}],
        },
        "phase { id }",
    )
    assert error_codes(payload) == ["CONSENT_REQUIRED"]
    assert (await gql(client, PHASES, {"id": sub["id"]}))["subscription"]["phases"] == []


async def test_due_phases_are_applied_with_their_history(client, clock, services):
    clock.set(datetime(2026, 1, 15, 9, tzinfo=UTC))
    world = await make_world(client)
    sub = (await subscribe(client, world, price="20.00"))["subscription"]
    phase = ok(
        await mutate(
            client,
            "updateSubscription",
            {
                "subscriptionId": sub["id"],
                "effectiveDate": "2026-02-01",
                "renewalType": "MANUAL",
                "metadata": {"phase": 2},
            },
            "phase { id }",
        )
    )["phase"]
    assert (await RenewalEngine(services).run_once()).phases == 0  # not due yet
    clock.set(datetime(2026, 2, 1, 0, 30, tzinfo=UTC))
    assert (await RenewalEngine(services).run_once()).phases == 1
    after = await get_subscription(client, sub["id"])
    assert after["renewalType"] == "MANUAL"
    assert after["metadata"] == {"phase": 2}
    listed = (await gql(client, PHASES, {"id": sub["id"]}))["subscription"]["phases"]
    assert [(p["id"], p["status"]) for p in listed] == [(phase["id"], "APPLIED")]
    last = (await history(client, sub["id"]))[-1]
    assert (last["action"], last["actor"]) == ("phase_applied", "renewal-engine")
    assert change(last, "renewalType") == ("AUTOMATIC", "MANUAL")
    assert (await RenewalEngine(services).run_once()).phases == 0  # applied once
