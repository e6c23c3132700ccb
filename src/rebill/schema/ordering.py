"""Sort orders of lists: the enums and inputs of ``orderBy``, and the keyset sorts they stand for."""

from __future__ import annotations

import enum

import strawberry
from sqlalchemy import Date, func, literal_column

from rebill.db import tables as t
from rebill.resolvers.pages import BY_ID, NEWEST_FIRST, Order, date_order, datetime_order, int_order

S = t.table_of(t.Subscription)


@strawberry.enum(description="Which way a list is sorted.")
class OrderDirection(enum.Enum):
    ASC = strawberry.enum_value("ASC", description="Smallest, earliest or oldest first")
    DESC = strawberry.enum_value("DESC", description="Largest, latest or newest first")


@strawberry.enum(description="What subscriptions(orderBy:) sorts by; the id breaks ties.")
class SubscriptionOrderField(enum.Enum):
    ID = strawberry.enum_value("ID", description="The order subscriptions were created in (the default)")
    CREATED_AT = strawberry.enum_value("CREATED_AT", description="When the subscription was created")
    UPDATED_AT = strawberry.enum_value("UPDATED_AT", description="When the subscription last changed")
    NEXT_RENEWAL_DATE = strawberry.enum_value(
        "NEXT_RENEWAL_DATE",
        description="The next renewal date (the trial end in TRIAL); subscriptions without one come last in ASC",
    )
    AMOUNT = strawberry.enum_value(
        "AMOUNT", description="What the next renewal bills, in minor units of its own currency (not converted)"
    )


@strawberry.input(description="How subscriptions(orderBy:) sorts: a field, then the id, in one direction.")
class SubscriptionOrder:
    field: SubscriptionOrderField = strawberry.field(description="The sort key")
    direction: OrderDirection = strawberry.field(default=OrderDirection.ASC, description="ASC (the default) or DESC")


@strawberry.input(description="The order of a subscription's history or renewals: newest first unless ASC.")
class ChronologicalOrder:
    direction: OrderDirection = strawberry.field(
        default=OrderDirection.DESC, description="DESC (newest first, the default) or ASC (oldest first)"
    )


# Final subscriptions have no next renewal date: they sort as if it were infinitely far
# away, by the same expression that ix_subscriptions_order_next_renewal indexes.
NEXT_RENEWAL_KEY = func.coalesce(S.c.next_renewal_date, literal_column("'infinity'::date", Date))

_SUBSCRIPTION_ORDERS = {
    SubscriptionOrderField.ID: BY_ID,
    SubscriptionOrderField.CREATED_AT: datetime_order("createdAt", S.c.created_at),
    SubscriptionOrderField.UPDATED_AT: datetime_order("updatedAt", S.c.updated_at),
    SubscriptionOrderField.NEXT_RENEWAL_DATE: date_order("nextRenewalDate", NEXT_RENEWAL_KEY),
    SubscriptionOrderField.AMOUNT: int_order("amount", S.c.amount_minor),
}


_REVERSED = {field: order.reversed() for field, order in _SUBSCRIPTION_ORDERS.items()}


def subscription_order(order_by: SubscriptionOrder | None) -> Order:
    """The sort ``orderBy`` asks for; the same object every time, so DataLoaders batch equal sorts together."""
    if order_by is None:
        return BY_ID
    orders = _REVERSED if order_by.direction == OrderDirection.DESC else _SUBSCRIPTION_ORDERS
    return orders[order_by.field]


_OLDEST_FIRST = BY_ID


def chronological(order_by: ChronologicalOrder | None) -> Order:
    """Newest first unless asked otherwise (ids grow with time)."""
    if order_by is not None and order_by.direction == OrderDirection.ASC:
        return _OLDEST_FIRST
    return NEWEST_FIRST
