"""Tax rates and shipping profiles as the API shows them (API.md "Tax rates and shipping profiles")."""

from __future__ import annotations

from typing import Any

import strawberry

from rebill.domain import shipping as ship
from rebill.domain import tax
from rebill.schema.common import Money, MoneyInput, Node, PageInfo, connection, to_global_id
from rebill.schema.inputs import Payload, SubscriptionMutationInput, SubscriptionPayload


@strawberry.type(description="A tax rate for a country, or for one region of it; the customer's address picks it.")
class TaxRate(Node):
    name: str = strawberry.field(description="What invoices call it, such as 'VAT' or 'CA sales tax'")
    percentage: str = strawberry.field(description='The rate as a decimal string: "20", "8.875"')
    inclusive: bool = strawberry.field(description="Whether prices include it (else it is added on top)")
    country: str = strawberry.field(description="ISO 3166-1 alpha-2 country")
    region: str | None = strawberry.field(description="ISO 3166-2 region such as US-CA (null: the whole country)")
    active: bool = strawberry.field(description="False once archived: it taxes no new invoice")

    @classmethod
    def of(cls, row: Any) -> TaxRate:
        return cls(
            id=strawberry.ID(to_global_id("TaxRate", row.id)),
            name=row.name,
            percentage=tax.percentage_text(row.percentage),
            inclusive=row.inclusive,
            country=row.country.strip(),
            region=row.region,
            active=row.active,
        )


@strawberry.type(description="One rate of a shipping profile.")
class ShippingRate:
    name: str = strawberry.field(description="What the customer reads, such as 'Standard'")
    amount: Money = strawberry.field(description="What a renewal bills for shipping, in this rate's currency")


@strawberry.type(
    description="Ordered shipping rates; a subscription ships at the first rate in its currency (seed 003)."
)
class ShippingProfile(Node):
    name: str = strawberry.field(description="The profile's name")
    rates: list[ShippingRate] = strawberry.field(description="Its rates, in the order they were listed")
    active: bool = strawberry.field(description="False once archived: it can be assigned to nothing new")

    @classmethod
    def of(cls, profile: ship.ShippingProfile) -> ShippingProfile:
        assert profile.id is not None
        return cls(
            id=strawberry.ID(to_global_id("ShippingProfile", profile.id)),
            name=profile.name,
            rates=[ShippingRate(name=r.name, amount=Money.of(r.amount)) for r in profile.rates],
            active=profile.active,
        )


@strawberry.input(description="A new tax rate.")
class CreateTaxRateInput:
    name: str = strawberry.field(description="What invoices call it")
    percentage: str = strawberry.field(description='0 to 100 as a decimal string, at most 4 decimals: "20", "8.875"')
    inclusive: bool = strawberry.field(default=False, description="Prices include it (default: added on top)")
    country: str = strawberry.field(description="ISO 3166-1 alpha-2 country, such as US or DE")
    region: str | None = strawberry.field(default=None, description="ISO 3166-2 region, such as US-CA (or CA)")
    idempotency_key: str | None = None


@strawberry.input(description="Archive a tax rate: it taxes no new invoice; what it taxed keeps it.")
class ArchiveTaxRateInput:
    tax_rate_id: strawberry.ID
    idempotency_key: str | None = None


@strawberry.type
class TaxRatePayload(Payload):
    tax_rate: TaxRate | None


@strawberry.input(description="A rate of a shipping profile.")
class ShippingRateInput:
    name: str = strawberry.field(description="What the customer reads")
    amount: MoneyInput = strawberry.field(description="What a renewal bills, in the currency it is given in")


@strawberry.input(description="A new shipping profile: rates in the order they apply, one or more per currency.")
class CreateShippingProfileInput:
    name: str
    rates: list[ShippingRateInput]
    idempotency_key: str | None = None


@strawberry.input(description="Rename a shipping profile or list its rates anew (fields left out keep theirs).")
class UpdateShippingProfileInput:
    shipping_profile_id: strawberry.ID
    name: str | None = None
    rates: list[ShippingRateInput] | None = None
    idempotency_key: str | None = None


@strawberry.input(description="Archive a shipping profile: subscriptions that ship with it go on; no new assignment.")
class ArchiveShippingProfileInput:
    shipping_profile_id: strawberry.ID
    idempotency_key: str | None = None


@strawberry.type
class ShippingProfilePayload(Payload):
    shipping_profile: ShippingProfile | None


@strawberry.input(description="Give a subscription a shipping profile of its own, or null to use its profile's.")
class SetShippingProfileInput(SubscriptionMutationInput):
    shipping_profile_id: strawberry.ID | None = strawberry.field(
        description="The shipping profile (null: back to the subscription profile's)"
    )
    consent_reference: str | None = strawberry.field(
        default=None, description="Who agreed to a higher shipping charge, when and how (needed for one)"
    )


SetShippingProfilePayload = SubscriptionPayload


@strawberry.type(description="An edge of a page of tax rates.")
class TaxRateEdge:
    cursor: str
    node: TaxRate


@strawberry.type(description="A page of tax rates, oldest first.")
class TaxRateConnection:
    edges: list[TaxRateEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type(description="An edge of a page of shipping profiles.")
class ShippingProfileEdge:
    cursor: str
    node: ShippingProfile


@strawberry.type(description="A page of shipping profiles, oldest first.")
class ShippingProfileConnection:
    edges: list[ShippingProfileEdge]
    page_info: PageInfo
    total_count: int


def tax_rate_connection(page: Any) -> TaxRateConnection:
    return connection(page, TaxRateEdge, TaxRateConnection, TaxRate.of)


def shipping_profile_connection(page: Any) -> ShippingProfileConnection:
    from rebill.db.repositories import shipping_profile_from_row

    return connection(
        page, ShippingProfileEdge, ShippingProfileConnection, lambda r: ShippingProfile.of(shipping_profile_from_row(r))
    )
