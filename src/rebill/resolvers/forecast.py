"""``billingForecast``: the arguments checked, the service asked, its points shown."""

from __future__ import annotations

from datetime import date
from typing import Annotated

import strawberry
from strawberry.types import Info

from rebill.domain.errors import RebillError
from rebill.domain.periods import MetricsInterval
from rebill.schema.common import ApiError
from rebill.schema.forecast import ForecastPoint
from rebill.services.forecast import ForecastService


async def billing_forecast(
    info: Info,
    currency: str,
    from_: Annotated[date, strawberry.argument(name="from")],
    to: date,
    interval: MetricsInterval | None = MetricsInterval.DAY,
) -> list[ForecastPoint]:
    try:
        forecast = await ForecastService(info.context.services).forecast(
            currency, from_, to, interval or MetricsInterval.DAY
        )
    except RebillError as exc:
        raise ApiError(exc.message, "BAD_USER_INPUT") from None
    return [ForecastPoint.of(point) for point in forecast.points]
