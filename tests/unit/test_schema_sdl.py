"""The committed schema.graphql is what the code serves: clients are generated from it."""

from __future__ import annotations

from pathlib import Path

from rebill.config import Settings
from rebill.schema import build_full_schema

SDL = Path(__file__).resolve().parents[2] / "schema.graphql"


def test_committed_schema_matches_the_code():
    served = build_full_schema(Settings()).as_str().strip()
    committed = SDL.read_text().strip()
    assert served == committed, "schema.graphql is stale: run `rebill schema > schema.graphql`"


def test_contract_names_exist_in_the_schema():
    sdl = SDL.read_text()
    for name in [
        "node(id: ID!): Node",
        "subscription(id: ID!): Subscription",
        "subscriptions(filter: SubscriptionFilter = null, first: Int = null, after: String = null): SubscriptionConnection!",
        "renewal(id: ID!): Renewal",
        "profile(id: ID!): SubscriptionProfile",
        "customer(id: ID!): Customer",
        "createSubscription(input: CreateSubscriptionInput!): CreateSubscriptionPayload!",
        "changeNextRenewalDate(input: ChangeNextRenewalDateInput!): ChangeNextRenewalDatePayload!",
        "refundRenewal(input: RefundRenewalInput!): RefundRenewalPayload!",
        "enum SubscriptionStatus",
        "enum NotificationKind",
        "type UserError",
    ]:
        assert name in sdl, name
