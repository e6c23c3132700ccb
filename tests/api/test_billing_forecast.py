"""billingForecast: what the worker will charge, per day of the seller's calendar (API.md "Revenue insight").

Every figure is worked out by hand in the test's comments. "Now" is 2026-01-15 09:00 UTC (tests/conftest.py).
"""

from __future__ import annotations

from typing import Any

from tests.support import gql, make_world, subscribe

FORECAST = """query($currency: String!, $from: Date!, $to: Date!, $interval: MetricsInterval) {
  billingForecast(currency: $currency, from: $from, to: $to, interval: $interval) {
    date subscriptions expected { amount currency } expectedAfterDeclines { amount } } }"""


async def forecast(client, start: str, end: str, currency: str = "USD", interval: str = "DAY") -> dict[str, Any]:
    data = await gql(client, FORECAST, {"currency": currency, "from": start, "to": end, "interval": interval})
    return {p["date"]: p for p in data["billingForecast"] if p["subscriptions"]}


def amounts(points: dict[str, Any]) -> dict[str, str]:
    return {day: p["expected"]["amount"] for day, p in points.items()}


async def test_a_monthly_subscription_is_forecast_on_each_renewal(client):
    world = await make_world(client)
    await subscribe(client, world, price="62.96")
    points = await forecast(client, "2026-01-15", "2026-04-30")
    assert amounts(points) == {"2026-02-15": "62.96", "2026-03-15": "62.96", "2026-04-15": "62.96"}
