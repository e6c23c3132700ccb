from tests.support import change, get_subscription, history, make_world, subscribe


async def test_a_new_subscription_bills_its_first_period_and_records_history(client):
    world = await make_world(client)
    payload = await subscribe(client, world)
    sub = payload["subscription"]
    assert sub["status"] == "ACTIVE"
    assert sub["nextRenewalDate"] == "2026-02-15"
    assert payload["renewal"]["kind"] == "INITIAL"
    assert payload["renewal"]["status"] == "PAID"
    again = await get_subscription(client, sub["id"])
    assert again["amount"] == {"amount": "62.96", "currency": "USD"}
    entries = await history(client, sub["id"])
    assert [e["action"] for e in entries] == ["created", "initial_charge", "renewal_paid"], "recorded, then settled"
    renewal = f"renewals.{payload['renewal']['id']}"
    assert change(entries[1], renewal)[1]["status"] == "PENDING"
    assert change(entries[2], f"{renewal}.status") == ("PENDING", "PAID")
