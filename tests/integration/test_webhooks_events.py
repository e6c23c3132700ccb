"""What a partner receives, as rules: bodies with global ids only, the retry schedule, secrets and signatures."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import orjson
import pytest
from standardwebhooks import Webhook

from rebill.ids import to_global_id
from rebill.webhooks.delivery import JITTER, SCHEDULE, retry_delay
from rebill.webhooks.events import body, partner_data
from rebill.webhooks.signing import headers, new_secret


@pytest.mark.parametrize(
    ("payload", "data"),
    [
        ({"subscriptionId": 7, "cycle": 2}, {"subscriptionId": to_global_id("Subscription", 7), "cycle": 2}),
        ({"renewalId": 9, "amount": "1.00"}, {"renewalId": to_global_id("Renewal", 9), "amount": "1.00"}),
        ({"customerId": 3}, {"customerId": to_global_id("Customer", 3)}),
        ({"bulkRunId": 4, "applied": 10}, {"bulkRunId": to_global_id("BulkRun", 4), "applied": 10}),
        ({"subscriptionId": None}, {}),
        # Raw ids with no known type, and the customer's links (raw ids in their paths), stay out.
        ({"ledgerId": 5, "renewUrl": "http://x/subscriptions/7/renew", "portalUrl": "http://x/p/abc"}, {}),
    ],
)
def test_partner_data_carries_global_ids_only(payload, data):
    assert partner_data(payload) == data


def test_the_body_is_type_timestamp_and_data():
    at = datetime(2026, 1, 15, 9, 0, tzinfo=UTC)
    assert orjson.loads(body("renewal.paid", at, {"subscriptionId": 1})) == {
        "type": "renewal.paid",
        "timestamp": "2026-01-15T09:00:00Z",
        "data": {"subscriptionId": to_global_id("Subscription", 1)},
    }


@pytest.mark.parametrize("attempts", range(1, len(SCHEDULE)))
def test_each_retry_waits_its_step_of_the_schedule_plus_at_most_the_jitter(attempts):
    rng = random.Random(attempts)
    for _ in range(50):
        delay = retry_delay(attempts, rng)
        assert delay is not None
        assert SCHEDULE[attempts] <= delay <= SCHEDULE[attempts] * (1 + JITTER)


def test_there_is_no_retry_after_the_tenth_attempt():
    assert len(SCHEDULE) == 10 and SCHEDULE[-1] == timedelta(hours=24)
    assert retry_delay(10) is None


def test_signatures_verify_with_every_signing_secret_and_no_other():
    old, new, other = new_secret(), new_secret(), new_secret()
    content = body("renewal.paid", datetime.now(UTC), {"subscriptionId": 1})
    sent = headers([new, old], "evt_1", datetime.now(UTC), content)
    assert sent["webhook-signature"].count("v1,") == 2
    for secret in (old, new):
        assert Webhook(secret).verify(content, sent)["type"] == "renewal.paid"
    with pytest.raises(Exception, match="No matching signature"):
        Webhook(other).verify(content, sent)


def test_an_id_already_global_is_kept_and_a_raw_one_in_a_string_is_dropped():
    gid = to_global_id("Subscription", 7)
    assert partner_data({"subscriptionId": gid, "renewalId": "12"}) == {"subscriptionId": gid}
