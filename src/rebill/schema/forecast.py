"""The billing forecast as the API shows it (API.md "Revenue insight")."""

from __future__ import annotations

from datetime import date

import strawberry

from rebill.schema.common import Money
from rebill.services.forecast import Point


@strawberry.type(
    description="What the renewal worker is expected to charge in one period (a day, week or month) of the "
    "seller's calendar, at today's prices."
)
class ForecastPoint:
    date: date = strawberry.field(
        description="The period's first day in the seller's time zone (the range's first day for a clipped period)"
    )
    subscriptions: int = strawberry.field(description="How many subscriptions are expected to be charged in it")
    expected: Money = strawberry.field(
        description="What they would charge: renewals, trial ends, retries, transfers and drafts due, "
        "with shipping and tax"
    )
    expected_after_declines: Money = strawberry.field(
        description="expected less the share of first attempts of scheduled renewals in this currency that "
        "failed in the last 90 days, rounded half-even"
    )

    @classmethod
    def of(cls, point: Point) -> ForecastPoint:
        return cls(
            date=point.period.start,
            subscriptions=point.subscriptions,
            expected=Money.of(point.expected),
            expected_after_declines=Money.of(point.after_declines),
        )
