from datetime import date
from decimal import Decimal

import pytest

from rebill.bulk.plan import (
    AdjustPrice,
    ApplyCoupon,
    Cancel,
    ClearGateway,
    SetGateway,
    ShiftNextRenewal,
    Suspend,
    parse_plan,
    plan_to_json,
)
from rebill.domain.cadence import IntervalUnit
from rebill.domain.errors import Collected
from rebill.domain.money import Money
from rebill.domain.status import SubscriptionStatus
from rebill.domain.subscription import GatewayMode

PLAN = {
    "filter": {"status": ["ACTIVE", "TRIAL"], "nextRenewalFrom": "2026-12-01", "nextRenewalTo": "2026-12-31"},
    "segments": [
        {
            "name": "trials",
            "when": {"inTrial": True},
            "actions": [{"shiftNextRenewal": {"unit": "DAY", "count": 14}}],
        },
        {
            "name": "forced-gateway",
            "when": {"gatewayMode": ["FORCED"]},
            "actions": [{"setGateway": {"gatewayId": "sandbox-b", "mode": "PREFERRED"}}],
        },
        {"name": "everyone-else", "actions": [{"adjustPrice": {"percent": "-10"}}]},
    ],
    "limit": 500,
}


def problems(data: object) -> list[tuple[str, str]]:
    with pytest.raises(Collected) as caught:
        parse_plan(data)
    return [(".".join(e.field or []), e.code) for e in caught.value.errors]


def test_the_plan_of_the_api_page_parses_into_segments_and_actions():
    plan = parse_plan(PLAN)
    assert plan.filter.status == (SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIAL)
    assert plan.filter.next_renewal_from == date(2026, 12, 1)
    assert [s.name for s in plan.segments] == ["trials", "forced-gateway", "everyone-else"]
    assert plan.segments[0].when is not None and plan.segments[0].when.in_trial is True
    assert plan.segments[0].actions == (ShiftNextRenewal(IntervalUnit.DAY, 14),)
    assert plan.segments[1].actions == (SetGateway("sandbox-b", GatewayMode.PREFERRED),)
    assert plan.segments[2].when is None
    assert plan.segments[2].actions == (AdjustPrice(percent=Decimal("-10")),)
    assert plan.limit == 500


def test_a_plan_survives_its_canonical_json_and_keeps_its_hash_whatever_the_limit():
    plan = parse_plan(PLAN)
    again = parse_plan(plan_to_json(plan))
    assert again == plan
    assert parse_plan({**PLAN, "limit": 2}).hash == plan.hash
    assert parse_plan({**PLAN, "filter": {"status": ["ACTIVE"]}}).hash != plan.hash


def test_the_same_plan_with_another_consent_reference_is_the_same_plan():
    def rise(consent: str | None) -> dict:
        params = {"percent": "10"} | ({"consentReference": consent} if consent else {})
        return {"segments": [{"name": "all", "actions": [{"adjustPrice": params}]}]}

    assert parse_plan(rise("letter A")).hash == parse_plan(rise("letter B")).hash == parse_plan(rise(None)).hash
    assert parse_plan(rise("letter A")).segments[0].actions[0].consent_reference == "letter A"
    lower = {"segments": [{"name": "all", "actions": [{"adjustPrice": {"percent": "-10"}}]}]}
    assert parse_plan(lower).hash != parse_plan(rise(None)).hash


def test_flags_coupons_cancel_and_amounts_parse():
    plan = parse_plan(
        {
            "segments": [
                {
                    "name": "all",
                    "actions": [
                        {"clearGateway": True},
                        {"suspend": {}},
                        {"applyCoupon": {"code": "TENOFF"}},
                        {"cancel": {"atPeriodEnd": True}},
                        {"adjustPrice": {"amount": {"amount": "-1.50", "currency": "USD"}, "productId": 7}},
                    ],
                }
            ]
        }
    )
    assert plan.segments[0].actions == (
        ClearGateway(),
        Suspend(),
        ApplyCoupon("TENOFF"),
        Cancel(at_period_end=True),
        AdjustPrice(amount=Money(-150, "USD"), product_id=7),
    )


def test_a_malformed_plan_reports_every_problem_at_once_with_its_path():
    found = problems(
        {
            "filter": {"status": ["ACTIVE"], "colour": "blue"},
            "segments": [
                {"name": "all", "actions": [{"adjustPrice": {}}]},
                {"name": "late", "when": {"inTrial": True}, "actions": [{"shiftNextRenewal": {"unit": "DAY"}}]},
                {"name": "odd", "actions": [{"suspend": True, "activate": True}, {"frobnicate": {}}]},
            ],
            "limit": -5,
            "dryRun": True,
        }
    )
    assert ("filter.colour", "UNKNOWN_FIELD") in found
    assert ("dryRun", "UNKNOWN_FIELD") in found
    assert ("limit", "INVALID_LIMIT") in found
    assert ("segments.0.actions.0.adjustPrice", "MISSING_PARAMETERS") in found
    assert ("segments.1", "UNREACHABLE_SEGMENT") in found
    assert ("segments.1.actions.0.shiftNextRenewal.count", "MISSING_PARAMETERS") in found
    assert ("segments.2", "UNREACHABLE_SEGMENT") in found
    assert ("segments.2.actions.0", "INVALID_ACTION") in found
    assert ("segments.2.actions.1.frobnicate", "UNKNOWN_ACTION") in found
    assert len(found) == 9


def test_messages_name_the_path_in_the_plan():
    with pytest.raises(Collected) as caught:
        parse_plan({"segments": [{"name": "cut", "actions": [{"adjustPrice": {"percent": "ten"}}]}]})
    assert caught.value.errors[0].message.startswith("segments[0].actions[0].adjustPrice.percent: ")


@pytest.mark.parametrize(
    ("action", "path", "code"),
    [
        ({"shiftNextRenewal": {"unit": "FORTNIGHT", "count": 1}}, "shiftNextRenewal.unit", "INVALID_VALUE"),
        ({"shiftNextRenewal": {"unit": "DAY", "count": 0}}, "shiftNextRenewal.count", "INVALID_SHIFT"),
        ({"setNextRenewalDate": {"date": "tomorrow"}}, "setNextRenewalDate.date", "INVALID_VALUE"),
        (
            {"setUnitPrice": {"unitPrice": {"amount": "-1", "currency": "USD"}}},
            "setUnitPrice.unitPrice",
            "INVALID_AMOUNT",
        ),
        (
            {"setUnitPrice": {"unitPrice": {"amount": "1.999", "currency": "USD"}}},
            "setUnitPrice.unitPrice",
            "INVALID_AMOUNT",
        ),
        ({"adjustPrice": {"percent": -10.5}}, "adjustPrice.percent", "INVALID_VALUE"),
        ({"adjustPrice": {"percent": "-150"}}, "adjustPrice.percent", "INVALID_VALUE"),
        (
            {"adjustPrice": {"percent": "5", "amount": {"amount": "1", "currency": "USD"}}},
            "adjustPrice.percent",
            "INVALID_VALUE",
        ),
        ({"setQuantity": {"quantity": -1}}, "setQuantity.quantity", "INVALID_QUANTITY"),
        ({"changeProfile": {"profileId": "not-an-id"}}, "changeProfile.profileId", "INVALID_ID"),
        ({"setGateway": {"mode": "FORCED"}}, "setGateway.gatewayId", "MISSING_PARAMETERS"),
        ({"setGateway": {"gatewayId": "b", "weight": 2}}, "setGateway.weight", "UNKNOWN_FIELD"),
        ({"applyCoupon": None}, "applyCoupon", "MISSING_PARAMETERS"),
        ({"suspend": False}, "suspend", "INVALID_VALUE"),
        ({"setMetadata": {"metadata": [1, 2]}}, "setMetadata.metadata", "INVALID_METADATA"),
    ],
)
def test_each_action_checks_its_parameters(action, path, code):
    found = problems({"segments": [{"name": "s", "actions": [action]}]})
    assert found == [(f"segments.0.actions.0.{path}", code)]


def test_a_plan_needs_segments_with_actions_and_distinct_names():
    assert problems({"filter": {}}) == [("segments", "MISSING_SEGMENTS")]
    found = problems(
        {
            "segments": [
                {"name": "a", "when": {"inTrial": True}, "actions": []},
                {"name": "a", "actions": [{"suspend": True}]},
            ]
        }
    )
    assert found == [("segments.0.actions", "MISSING_ACTIONS"), ("segments.1.name", "DUPLICATE_SEGMENT")]


def test_plan_lists_are_bounded_like_every_list_a_graphql_client_sends():
    from rebill.bulk.plan import MAX_LIST_ITEMS, out_of_bounds
    from rebill.resolvers import client_errors

    assert MAX_LIST_ITEMS == client_errors.MAX_LIST_ITEMS == 1000
    assert out_of_bounds({**PLAN, "filter": {"ids": list(range(1, 1001))}}) is None
    assert out_of_bounds({**PLAN, "filter": {"ids": list(range(1, 1002))}}) == (
        "filter.ids: at most 1000 items per list (got 1001)"
    )
    nested = {"segments": [{"actions": []}, {"when": {"profileIds": [1] * 2000}, "actions": []}]}
    assert out_of_bounds(nested) == "segments[1].when.profileIds: at most 1000 items per list (got 2000)"
    assert out_of_bounds([0] * 1001) == "the plan: at most 1000 items per list (got 1001)"


def test_plan_files_keep_the_string_bounds_of_graphql_input():
    from rebill.bulk.plan import MAX_STRING_CHARS, out_of_bounds
    from rebill.resolvers import client_errors

    assert MAX_STRING_CHARS == client_errors.MAX_STRING_CHARS
    reason = {**PLAN, "reason": "x" * MAX_STRING_CHARS}
    assert out_of_bounds(reason) is None
    assert out_of_bounds({**PLAN, "reason": "x" * (MAX_STRING_CHARS + 1)}) == (
        f"reason: at most {MAX_STRING_CHARS} characters per string (got {MAX_STRING_CHARS + 1})"
    )
    assert out_of_bounds({**PLAN, "reason": "price\x00rise"}) == "reason: text may not contain NUL characters"
    assert out_of_bounds({**PLAN, "filter": {"status\x00": ["ACTIVE"]}}) == "filter: a key contains a NUL character"


def test_a_plan_filters_by_customer_search_as_the_api_does_and_bounds_it_alike():
    from rebill.services.search import MAX_SEARCH_LENGTH

    plan = parse_plan({**PLAN, "filter": {"customerSearch": "Ada lovelace%"}})
    assert plan.filter.customer_search == "Ada lovelace%"
    assert plan_to_json(plan)["filter"] == {"customerSearch": "Ada lovelace%"}
    assert parse_plan(plan_to_json(plan)) == plan
    long = {**PLAN, "filter": {"customerSearch": "a" * (MAX_SEARCH_LENGTH + 1)}}
    assert problems(long) == [("filter.customerSearch", "INVALID_VALUE")]
    assert problems({**PLAN, "filter": {"customerSearch": 7}}) == [("filter.customerSearch", "INVALID_VALUE")]
