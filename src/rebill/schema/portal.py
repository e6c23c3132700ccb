"""Types of the customer portal and of customer edits: portal sessions, ``updateCustomer``."""

from __future__ import annotations

from datetime import datetime

import strawberry

from rebill.schema.catalog import Customer
from rebill.schema.inputs import AddressInput, Payload
from rebill.services.customers import Flow

PortalFlow = strawberry.enum(Flow, name="PortalFlow", description="Where a portal link lands")


@strawberry.input
class CreateCustomerPortalSessionInput:
    customer_id: strawberry.ID
    return_url: str | None = strawberry.field(
        default=None, description="The store's page the portal links back to (absolute http or https URL)"
    )
    flow: PortalFlow = Flow.OVERVIEW  # type: ignore[valid-type]
    subscription_id: strawberry.ID | None = strawberry.field(
        default=None, description="Open this subscription's page (one of the customer's); default: the overview"
    )


@strawberry.type
class CreateCustomerPortalSessionPayload(Payload):
    url: str | None = strawberry.field(description="For a browser: works once, until expiresAt")
    token: str | None = strawberry.field(
        description=(
            "For the store's own pages: Authorization: Bearer with the customer scope, until expiresAt;"
            " it reads the customer's e-mail, addresses, payment methods and subscriptions"
        )
    )
    expires_at: datetime | None


@strawberry.input
class UpdateCustomerInput:
    customer_id: strawberry.ID
    email: str | None = None
    name: str | None = None
    time_zone: str | None = None
    billing_address: AddressInput | None = None
    tax_id: str | None = strawberry.field(
        default=None,
        description="The customer's tax id (a VAT number), printed on invoices issued after; empty clears it",
    )
    tax_exempt: bool | None = strawberry.field(
        default=None, description="Exempt from tax: invoices issued after show a zero rate with the reason"
    )
    tax_exempt_reason: str | None = strawberry.field(
        default=None, description="Why, such as 'Reverse charge' (needed to make a customer exempt)"
    )
    idempotency_key: str | None = None


@strawberry.type
class UpdateCustomerPayload(Payload):
    customer: Customer | None
