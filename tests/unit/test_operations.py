"""The subscription operations as pure rules: no database, no GraphQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from rebill.domain import creation, lifecycle, updates
from rebill.domain.cadence import AnchorPolicy, Cadence, IntervalUnit
from rebill.domain.errors import RebillError
from rebill.domain.money import Money
from rebill.domain.outcome import OpContext
from rebill.domain.proration import Proration
from rebill.domain.renewal import FulfillmentStatus, RenewalInfo, RenewalKind, RenewalStatus
from rebill.domain.status import SubscriptionStatus
from rebill.domain.subscription import (
    PaymentKind,
    PaymentMethodInfo,
    ProductInfo,
    ProductKind,
    ProfileTerms,
    diff,
    state_from_json,
    state_to_json,
)

MONTHLY = ProfileTerms(id=1, name="Monthly", cadence=Cadence(IntervalUnit.MONTH))
COFFEE = ProductInfo(1, "Coffee", "coffee")
TEA = ProductInfo(2, "Tea", "tea")
METER = ProductInfo(3, "API calls", "api", ProductKind.USAGE)
CARD = PaymentMethodInfo(10, 100, PaymentKind.CARD, "4242424242424242")


def ctx(day: date) -> OpContext:
    return OpContext(now=datetime(day.year, day.month, day.day, 12, tzinfo=UTC), today=day)


def usd(text: str) -> Money:
    return Money.parse(text, "USD")


def start(day=date(2026, 1, 31), price="10.00", quantity=1, profile=MONTHLY, trial=None, product=COFFEE):
    outcome = creation.start_subscription(
        ctx(day),
        customer_id=100,
        profile=profile,
        items=[creation.NewItem(product, usd(price), quantity)],
        trial_days=trial,
        payment_method=CARD,
    )
    # As saved: ids given to the subscription and its items.
    state = outcome.state.evolve(id=7)
    return state.evolve(items=tuple(replace(i, id=n + 1, temp=0) for n, i in enumerate(state.items)))


def test_a_new_monthly_subscription_bills_its_first_period_from_the_31st():
    outcome = creation.start_subscription(
        ctx(date(2026, 1, 31)), customer_id=100, profile=MONTHLY, items=[creation.NewItem(COFFEE, usd("10.00"), 2)]
    )
    assert outcome.charge is not None
    assert (outcome.charge.kind, outcome.charge.cycle) == (RenewalKind.INITIAL, 1)
    assert (outcome.charge.period_start, outcome.charge.period_end) == (date(2026, 1, 31), date(2026, 2, 28))
    assert outcome.charge.amount == usd("20.00")
    assert outcome.state.next_renewal_date == date(2026, 2, 28)


def test_a_trial_starts_without_a_charge_and_renews_at_its_end():
    state = start(trial=14)
    assert state.status is SubscriptionStatus.TRIAL
    assert state.next_renewal_date == state.trial_end_date == date(2026, 2, 14)


def test_trial_moves_with_next_renewal_date():
    state = start(trial=14)
    moved = updates.change_next_renewal_date(state, ctx(date(2026, 2, 1)), shift=updates.Shift(IntervalUnit.DAY, 14))
    assert moved.state.next_renewal_date == moved.state.trial_end_date == date(2026, 2, 28)
    assert moved.state.anchor_date == date(2026, 2, 28)


@pytest.mark.parametrize(
    ("shift", "expected"),
    [
        (updates.Shift(IntervalUnit.MONTH, 2), date(2026, 4, 28)),  # from Feb 28
        (updates.Shift(IntervalUnit.DAY, 30), date(2026, 3, 30)),
        (updates.Shift(IntervalUnit.WEEK, 1), date(2026, 3, 7)),
        (updates.Shift(IntervalUnit.YEAR, 1), date(2027, 2, 28)),
        (updates.Shift(IntervalUnit.DAY, -3), date(2026, 2, 25)),
    ],
)
def test_shifts_move_the_next_renewal_by_calendar_units(shift, expected):
    state = start()
    assert (
        updates.change_next_renewal_date(state, ctx(date(2026, 2, 1)), shift=shift).state.next_renewal_date == expected
    )


def test_a_next_renewal_in_the_past_is_refused():
    with pytest.raises(RebillError) as refused:
        updates.change_next_renewal_date(start(), ctx(date(2026, 2, 10)), date_=date(2026, 2, 9))
    assert refused.value.code == "DATE_IN_PAST"


@pytest.mark.parametrize(
    ("price", "quantity", "consent", "code"),
    [
        ("12.00", None, None, "CONSENT_REQUIRED"),
        ("12.00", None, "signed", None),
        ("8.00", None, None, None),
        (None, 2, None, "CONSENT_REQUIRED"),
        (None, 0, None, None),
        (None, -1, None, "INVALID_QUANTITY"),
    ],
)
def test_raising_the_bill_needs_consent_and_lowering_it_does_not(price, quantity, consent, code):
    state = start()
    run = lambda: updates.update_item(  # noqa: E731
        state,
        ctx(date(2026, 2, 10)),
        item_id=1,
        unit_price=usd(price) if price else None,
        quantity=quantity,
        consent_reference=consent,
    )
    if code is None:
        run()
    else:
        with pytest.raises(RebillError) as refused:
            run()
        assert refused.value.code == code


def test_usage_quantities_are_refused():
    state = start(product=METER)
    with pytest.raises(RebillError) as refused:
        updates.update_item(state, ctx(date(2026, 2, 10)), item_id=1, quantity=5)
    assert refused.value.code == "QUANTITY_NOT_CHANGEABLE"


@pytest.mark.parametrize(
    ("day", "expected"),
    [
        (date(2026, 1, 31), "10.00"),  # first day of the period: the whole difference
        (date(2026, 2, 14), "5.00"),  # 14 of 28 days left
        (date(2026, 2, 27), "0.36"),  # last day: 1/28 of 10.00, half-even
    ],
)
def test_prorated_upgrades_charge_the_days_left(day, expected):
    state = start()  # period 2026-01-31 .. 2026-02-28 (28 days)
    outcome = updates.update_item(
        state, ctx(day), item_id=1, quantity=2, proration=Proration.PRORATED, consent_reference="yes"
    )
    assert outcome.charge is not None
    assert outcome.charge.amount == usd(expected)
    assert outcome.charge.adjustment


def test_a_change_for_the_next_renewal_is_pending_and_billed_later():
    state = start(price="5.00", quantity=10)
    outcome = updates.update_item(
        state,
        ctx(date(2026, 2, 10)),
        item_id=1,
        quantity=15,
        effective=updates.Effective.NEXT_RENEWAL,
        consent_reference="ok",
    )
    assert outcome.charge is None
    assert outcome.state.items[0].quantity == 10
    assert outcome.state.amount == usd("75.00")
    assert updates.apply_pending(outcome.state).items[0].quantity == 15


def test_the_last_item_cannot_be_removed():
    with pytest.raises(RebillError) as refused:
        updates.remove_item(start(), ctx(date(2026, 2, 10)), item_id=1)
    assert refused.value.code == "LAST_ITEM"


def test_the_end_may_not_come_before_the_current_period_ends():
    with pytest.raises(RebillError) as refused:
        updates.set_end_date(start(), ctx(date(2026, 2, 10)), end_date=date(2026, 2, 20))
    assert refused.value.code == "END_BEFORE_PERIOD_END"
    ok = updates.set_end_date(start(), ctx(date(2026, 2, 10)), after=updates.Shift(IntervalUnit.MONTH, 6))
    assert ok.state.end_date == date(2026, 7, 31)


def _paid(
    state, gateway="sandbox", kind=PaymentKind.CARD, fulfillment=FulfillmentStatus.NONE, status=RenewalStatus.PAID
):
    return RenewalInfo(
        id=5,
        subscription_id=state.id,
        cycle=1,
        kind=RenewalKind.INITIAL,
        status=status,
        period_start=state.start_date,
        period_end=state.next_renewal_date,
        amount=usd("10.00"),
        refunded=usd("0.00"),
        fulfillment=fulfillment,
        gateway_id=gateway,
        payment_kind=kind,
    )


@pytest.mark.parametrize(
    ("renewal_kwargs", "options", "code"),
    [
        ({}, {"refund_last_renewal": True}, None),
        ({"gateway": None, "kind": PaymentKind.EXTERNAL}, {"refund_last_renewal": True}, "REFUND_NOT_ALLOWED"),
        ({"kind": PaymentKind.OFFLINE}, {"refund_last_renewal": True}, "REFUND_NOT_ALLOWED"),
        ({"status": RenewalStatus.FAILED}, {"refund_last_renewal": True}, "REFUND_NOT_ALLOWED"),
        ({"fulfillment": FulfillmentStatus.SHIPPED}, {"cancel_fulfillment": True}, "ALREADY_SHIPPED"),
        ({"fulfillment": FulfillmentStatus.PENDING}, {"cancel_fulfillment": True}, None),
    ],
)
def test_cancel_options_follow_seed_000(renewal_kwargs, options, code):
    state = start()
    last = _paid(state, **renewal_kwargs)
    run = lambda: lifecycle.cancel(state, ctx(date(2026, 2, 10)), last_renewal=last, **options)  # noqa: E731
    if code is None:
        outcome = run()
        assert outcome.state.status is SubscriptionStatus.CANCELLED
        assert outcome.state.next_renewal_date is None
    else:
        with pytest.raises(RebillError) as refused:
            run()
        assert refused.value.code == code


def test_cancel_at_period_end_keeps_the_subscription_running_until_then():
    outcome = lifecycle.cancel(start(), ctx(date(2026, 2, 10)), at_period_end=True)
    assert outcome.state.status is SubscriptionStatus.ACTIVE
    assert outcome.state.cancel_at_period_end
    assert outcome.state.end_date == date(2026, 2, 28)


def test_nothing_changes_a_cancelled_subscription():
    cancelled = lifecycle.cancel(start(), ctx(date(2026, 2, 10))).state
    for op in (
        lambda s: lifecycle.activate(s, ctx(date(2026, 2, 11))),
        lambda s: lifecycle.suspend(s, ctx(date(2026, 2, 11))),
        lambda s: updates.set_metadata(s, ctx(date(2026, 2, 11)), metadata={"a": 1}),
        lambda s: lifecycle.renew_now(s, ctx(date(2026, 2, 11))),
    ):
        with pytest.raises(RebillError) as refused:
            op(cancelled)
        assert refused.value.code == "INVALID_STATUS"
        assert "CANCELLED" in refused.value.message


def test_renew_now_extend_adds_a_period_and_restart_moves_the_anchor():
    state = start(day=date(2026, 1, 15))
    extend = lifecycle.renew_now(state, ctx(date(2026, 1, 20)), mode=lifecycle.RenewNowMode.EXTEND)
    assert extend.charge is not None
    assert (extend.charge.period_start, extend.charge.period_end) == (date(2026, 2, 15), date(2026, 3, 15))
    assert extend.state.next_renewal_date == date(2026, 3, 15)
    restart = lifecycle.renew_now(state, ctx(date(2026, 1, 20)), mode=lifecycle.RenewNowMode.RESTART)
    assert restart.charge is not None
    assert (restart.charge.period_start, restart.charge.period_end) == (date(2026, 1, 20), date(2026, 2, 20))
    assert restart.state.anchor_date == date(2026, 1, 20)


def test_refunds_never_exceed_what_was_paid():
    state = start()
    paid = _paid(state)
    assert lifecycle.refund_renewal(state, ctx(date(2026, 2, 1)), renewal=paid, amount=usd("4.00")).refund is not None
    with pytest.raises(RebillError) as refused:
        lifecycle.refund_renewal(state, ctx(date(2026, 2, 1)), renewal=paid, amount=usd("10.01"))
    assert refused.value.code == "REFUND_EXCEEDS_PAID"


def test_diff_lists_each_changed_field_with_before_and_after():
    state = start()
    after = updates.update_item(state, ctx(date(2026, 2, 1)), item_id=1, unit_price=usd("8.00")).state
    changes = {c["field"]: (c["before"], c["after"]) for c in diff(state, after)}
    assert changes == {"amount": ("10.00", "8.00"), "items.1.unitPrice": ("10.00", "8.00")}


@given(
    price=st.integers(min_value=0, max_value=10**9),
    quantity=st.integers(min_value=0, max_value=10_000),
    day=st.dates(min_value=date(1971, 1, 1), max_value=date(2199, 1, 1)),
    trial=st.one_of(st.none(), st.integers(min_value=1, max_value=90)),
    policy=st.sampled_from(list(AnchorPolicy)),
)
def test_states_survive_a_json_round_trip(price, quantity, day, trial, policy):
    profile = ProfileTerms(id=2, name="P", cadence=Cadence(IntervalUnit.MONTH, 3), anchor_policy=policy)
    state = start(day=day, price=Money(price, "USD").amount_str, quantity=quantity, profile=profile, trial=trial)
    assert state_from_json(state_to_json(state)) == state


@pytest.mark.parametrize(
    "operation",
    [
        lambda s, c: updates.change_next_renewal_date(s, c, shift=updates.Shift(IntervalUnit.DAY, 14)),
        lambda s, c: updates.update_item(s, c, item_id=1, unit_price=usd("7.50")),
        lambda s, c: updates.set_metadata(s, c, metadata={"segment": "smb"}),
        lambda s, c: updates.set_gateway(s, c, gateway_id="sandbox-b", mode=None, known_gateways=["sandbox-b"]),
        lambda s, c: lifecycle.suspend(s, c),
        lambda s, c: lifecycle.cancel(s, c),
        lambda s, c: updates.change_profile(
            s, c, profile=ProfileTerms(id=9, name="Weekly", cadence=Cadence(IntervalUnit.WEEK))
        ),
    ],
)
def test_an_undo_delta_puts_back_exactly_what_an_operation_changed(operation):
    import orjson

    from rebill.domain.subscription import delta_to_json, undo

    before = start(trial=None)
    after = operation(before, ctx(date(2026, 2, 10))).state
    delta = orjson.loads(orjson.dumps(delta_to_json(before, after)))
    assert undo(after, delta) == before
    assert len(orjson.dumps(delta)) < len(orjson.dumps(state_to_json(before))) / 2
