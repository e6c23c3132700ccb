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


def _without_descriptions(sdl: str) -> str:
    """The SDL printed without descriptions: every field's signature on one line."""
    from graphql import build_schema, print_schema

    schema = build_schema(sdl)
    for type_ in schema.type_map.values():
        type_.description = None
        for field in getattr(type_, "fields", {}).values():
            field.description = None
            for arg in getattr(field, "args", {}).values():
                arg.description = None
        for value in getattr(type_, "values", {}).values():
            value.description = None
    return print_schema(schema)


def test_contract_names_exist_in_the_schema():
    sdl = _without_descriptions(SDL.read_text())
    for name in [
        "node(id: ID!): Node",
        "subscription(id: ID!): Subscription",
        "subscriptions(filter: SubscriptionFilter = null, first: Int = null, after: String = null, last: Int = null, "
        "before: String = null, orderBy: SubscriptionOrder = null): SubscriptionConnection!",
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
