"""``revenueMetrics``: the arguments checked, the service asked, its points shown."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import strawberry
from strawberry.types import Info

from rebill.domain.errors import RebillError
from rebill.domain.periods import MetricsInterval
from rebill.schema.common import ApiError
from rebill.schema.revenue import MetricsPoint
from rebill.services.revenue import RevenueMetrics


async def revenue_metrics(
    info: Info,
    currency: Annotated[
        str, strawberry.argument(description="The ISO 4217 currency; subscriptions and money in others are left out")
    ],
    from_: Annotated[date, strawberry.argument(name="from", description="The first day, in the seller's time zone")],
    to: Annotated[date, strawberry.argument(description="The last day (included), in the seller's time zone")],
    interval: Annotated[
        MetricsInterval | None,
        strawberry.argument(description="One point per calendar month (the default), week (from Monday) or day"),
    ] = MetricsInterval.MONTH,
) -> list[MetricsPoint]:
    """At most 400 points; a longer range is refused with BAD_USER_INPUT."""
    try:
        points = await RevenueMetrics(info.context.services).points(
            currency, from_, to, interval or MetricsInterval.MONTH
        )
    except RebillError as exc:
        raise ApiError(exc.message, "BAD_USER_INPUT") from None
    return [MetricsPoint.of(point) for point in points]
