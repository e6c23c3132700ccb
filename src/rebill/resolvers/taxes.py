"""Tax rate and shipping profile queries and mutations: a few lines each over ``services.taxes``."""

from __future__ import annotations

from strawberry.types import Info

from rebill.db import tables as t
from rebill.domain.money import Money as DomainMoney
from rebill.resolvers.mutations import (
    actor_of,
    common_of,
    errors_of,
    guarded,
    money,
    pk,
    request_of,
    sub_pk,
    subscription_payload,
)
from rebill.resolvers.pages import fetch_page
from rebill.schema import taxes as s
from rebill.schema.inputs import SubscriptionPayload
from rebill.services.runtime import Result
from rebill.services.taxes import ShippingService, TaxService

TAX_RATES = t.table_of(t.TaxRate)
SHIPPING_PROFILES = t.table_of(t.ShippingProfile)


async def tax_rates(
    info: Info, first: int | None = None, after: str | None = None, last: int | None = None, before: str | None = None
) -> s.TaxRateConnection:
    async with info.context.services.sessions() as session:
        page = await fetch_page(session, TAX_RATES, [], first, after, last=last, before=before)
    return s.tax_rate_connection(page)


async def shipping_profiles(
    info: Info, first: int | None = None, after: str | None = None, last: int | None = None, before: str | None = None
) -> s.ShippingProfileConnection:
    async with info.context.services.sessions() as session:
        page = await fetch_page(session, SHIPPING_PROFILES, [], first, after, last=last, before=before)
    return s.shipping_profile_connection(page)


def _tax_rate_payload(result: Result) -> s.TaxRatePayload:
    row = result.extra.get("taxRate")
    return s.TaxRatePayload(user_errors=errors_of(result), tax_rate=s.TaxRate.of(row) if row is not None else None)


def _shipping_payload(result: Result) -> s.ShippingProfilePayload:
    profile = result.extra.get("shippingProfile")
    return s.ShippingProfilePayload(
        user_errors=errors_of(result), shipping_profile=s.ShippingProfile.of(profile) if profile else None
    )


def _rates(rates: list[s.ShippingRateInput] | None) -> list[tuple[str, DomainMoney]] | None:
    if rates is None:
        return None
    out = []
    for n, rate in enumerate(rates):
        amount = money(rate.amount, "rates", str(n), "amount")
        assert amount is not None
        out.append((rate.name, amount))
    return out


async def create_tax_rate(info: Info, input: s.CreateTaxRateInput) -> s.TaxRatePayload:
    async def call() -> Result:
        return await TaxService(info.context.services).create_tax_rate(
            actor_of(info),
            request_of(input),
            common_of(input),
            name=input.name,
            percentage=input.percentage,
            inclusive=input.inclusive,
            country=input.country,
            region=input.region,
        )

    return _tax_rate_payload(await guarded(call))


async def archive_tax_rate(info: Info, input: s.ArchiveTaxRateInput) -> s.TaxRatePayload:
    async def call() -> Result:
        return await TaxService(info.context.services).archive_tax_rate(
            actor_of(info),
            request_of(input),
            common_of(input),
            tax_rate_id=pk(input.tax_rate_id, "TaxRate", "taxRateId"),
        )

    return _tax_rate_payload(await guarded(call))


async def create_shipping_profile(info: Info, input: s.CreateShippingProfileInput) -> s.ShippingProfilePayload:
    async def call() -> Result:
        return await ShippingService(info.context.services).create_shipping_profile(
            actor_of(info), request_of(input), common_of(input), name=input.name, rates=_rates(input.rates) or []
        )

    return _shipping_payload(await guarded(call))


async def update_shipping_profile(info: Info, input: s.UpdateShippingProfileInput) -> s.ShippingProfilePayload:
    async def call() -> Result:
        return await ShippingService(info.context.services).update_shipping_profile(
            actor_of(info),
            request_of(input),
            common_of(input),
            shipping_profile_id=pk(input.shipping_profile_id, "ShippingProfile", "shippingProfileId"),
            name=input.name,
            rates=_rates(input.rates),
        )

    return _shipping_payload(await guarded(call))


async def archive_shipping_profile(info: Info, input: s.ArchiveShippingProfileInput) -> s.ShippingProfilePayload:
    async def call() -> Result:
        return await ShippingService(info.context.services).archive_shipping_profile(
            actor_of(info),
            request_of(input),
            common_of(input),
            shipping_profile_id=pk(input.shipping_profile_id, "ShippingProfile", "shippingProfileId"),
        )

    return _shipping_payload(await guarded(call))


async def set_shipping_profile(info: Info, input: s.SetShippingProfileInput) -> SubscriptionPayload:
    async def call() -> Result:
        chosen = input.shipping_profile_id
        return await ShippingService(info.context.services).set_shipping_profile(
            actor_of(info),
            common_of(input),
            request_of(input),
            sub_pk(input),
            shipping_profile_id=pk(chosen, "ShippingProfile", "shippingProfileId") if chosen is not None else None,
            consent_reference=input.consent_reference,
        )

    return subscription_payload(SubscriptionPayload, await guarded(call))
