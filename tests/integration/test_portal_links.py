"""E-mail portal links: the batch writers' set-based links are the outbox trigger's, row for row."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import text

from rebill.db.sets import insert_rows
from rebill.ids import from_global_id
from rebill.services.outbox import OUTBOX, add_portal_links
from tests.support import make_world, subscribe

KINDS = ["RENEWAL_RECEIPT", "PAYMENT_DECLINED", "RENEWAL_REMINDER", "AWAITING_REINSTATE", "SUBSCRIPTION_CANCELLED"]


async def test_links_made_for_a_batch_match_the_triggers_and_the_merchant_gets_none(client, services):
    world = await make_world(client)
    sub = (await subscribe(client, world))["subscription"]
    sid = int(from_global_id(sub["id"])[1])
    at = datetime(2026, 1, 20, 9, tzinfo=UTC)

    def rows(tag: str) -> list[dict]:
        made = []
        for kind in KINDS:
            payload = {"subscriptionId": sid, "tag": tag}
            if kind == "RENEWAL_RECEIPT":
                payload["invoiceId"] = 1
            made.append(
                {
                    "kind": kind,
                    "subscription_id": sid,
                    "recipient": "ADA@example.com",
                    "payload": payload,
                    "created_at": at,
                    "delivered_at": None,
                }
            )
        made.append(
            {
                "kind": "MERCHANT_SUBSCRIPTION_CANCELLED",
                "subscription_id": sid,
                "recipient": "orders@shop.example",
                "payload": {"subscriptionId": sid, "tag": tag},
                "created_at": at,
                "delivered_at": None,
            }
        )
        return made

    async with services.engine.begin() as conn:
        await conn.execute(text("DELETE FROM portal_tokens"))
    async with services.sessions() as session, session.begin():
        await insert_rows(session, OUTBOX, rows("trigger"))  # the trigger links these, one by one
        batch = rows("batch")
        customer = int(from_global_id(world.customer)[1])
        await add_portal_links(session, batch, [customer] * len(KINDS) + [None], at)
        await insert_rows(session, OUTBOX, batch)

    query = """SELECT o.payload->>'tag' AS tag, o.kind, o.payload->>'portalUrl' AS url,
                      t.flow, t.invoice_id, t.subscription_id, t.customer_id, t.source, t.expires_at - t.created_at AS life
               FROM outbox o LEFT JOIN portal_tokens t
                 ON t.token_hash = encode(sha256(convert_to(split_part(o.payload->>'portalUrl', '/portal/start/', 2),
                                                            'UTF8')), 'hex')
               WHERE o.payload ? 'tag' ORDER BY o.kind, tag"""
    async with services.engine.connect() as conn:
        found = [dict(r._mapping) for r in await conn.execute(text(query))]
    by_kind: dict[str, dict[str, dict]] = {}
    for row in found:
        by_kind.setdefault(row["kind"], {})[row["tag"]] = row
    assert set(by_kind) == {*KINDS, "MERCHANT_SUBSCRIPTION_CANCELLED"}
    merchant = by_kind.pop("MERCHANT_SUBSCRIPTION_CANCELLED")
    assert merchant["batch"]["url"] is None and merchant["trigger"]["url"] is None, "the merchant's copy has no link"
    for kind, pair in by_kind.items():
        made, expected = pair["batch"], pair["trigger"]
        assert made["url"].startswith("http://127.0.0.1:8000/portal/start/") and made["url"] != expected["url"], kind
        same = ("flow", "invoice_id", "subscription_id", "customer_id", "source", "life")
        assert {k: made[k] for k in same} == {k: expected[k] for k in same}, kind
    assert by_kind["RENEWAL_RECEIPT"]["batch"]["invoice_id"] == 1, "a receipt opens the invoice it names"
    assert by_kind["PAYMENT_DECLINED"]["batch"]["flow"] == "PAYMENT_METHOD"
