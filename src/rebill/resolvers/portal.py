"""Portal sessions, ``updateCustomer``, ``viewer``, and the mutations a customer token may call.

A customer token (the ``customer`` scope) reaches the six mutations API.md
lists for it, each through ``SelfService``: its own subscriptions only
(another customer's is ``NOT_FOUND``), a later date only, cancel now, a
card, its billing address, renewing a manual subscription that awaits
reinstatement. Options that are the merchant's are refused as
``FORBIDDEN``. Staff keys get the ordinary resolvers unchanged.
"""

from __future__ import annotations

from typing import Any

import strawberry
from strawberry.types import Info

from rebill.db import tables as t
from rebill.domain.errors import NotFound, RebillError
from rebill.domain.subscription import PaymentKind
from rebill.portal.tokens import Flow, create_portal_session
from rebill.resolvers import mutations as m
from rebill.resolvers.queries import subscription_page
from rebill.schema import inputs
from rebill.schema.catalog import Customer
from rebill.schema.ordering import SubscriptionOrder
from rebill.schema.portal import (
    CreateCustomerPortalSessionInput,
    CreateCustomerPortalSessionPayload,
    UpdateCustomerInput,
    UpdateCustomerPayload,
)
from rebill.schema.subscriptions import SubscriptionConnection
from rebill.services.customers import CustomerService, SelfService, customer_of
from rebill.services.runtime import Common, Result

S = t.table_of(t.Subscription)


def _forbidden(what: str, *field: str) -> RebillError:
    return RebillError(f"a customer token may not {what}", code="FORBIDDEN", field=list(field))


def _address(data: inputs.AddressInput | None) -> dict[str, Any] | None:
    if data is None:
        return None
    return {
        "line1": data.line1,
        "line2": data.line2,
        "city": data.city,
        "region": data.region,
        "postalCode": data.postal_code,
        "country": data.country,
    }


# -- staff ---------------------------------------------------------------------


async def create_customer_portal_session(
    info: Info, input: CreateCustomerPortalSessionInput
) -> CreateCustomerPortalSessionPayload:
    """A one-time link into the portal and a customer-scoped bearer token, both valid REBILL_PORTAL_LINK_TTL.

    Only keys with ``read`` and ``write`` get here (schema/root.py): either one reads the customer's data.
    """
    try:
        session = await create_portal_session(
            info.context.services,
            m.pk(input.customer_id, "Customer", "customerId"),
            flow=Flow(input.flow),
            return_url=input.return_url,
            subscription_id=m.pk(input.subscription_id, "Subscription", "subscriptionId")
            if input.subscription_id
            else None,
        )
    except RebillError as exc:
        return CreateCustomerPortalSessionPayload(
            user_errors=m.errors_of(Result(errors=[exc])), url=None, token=None, expires_at=None
        )
    return CreateCustomerPortalSessionPayload(
        user_errors=[], url=session.url, token=session.token, expires_at=session.expires_at
    )


async def update_customer(info: Info, input: UpdateCustomerInput) -> UpdateCustomerPayload:
    """Staff change any of the fields; a customer token changes its own billing address only."""
    services = info.context.services
    customer = customer_of(info.context.actor)
    request = m.request_of(input)
    common = Common(idempotency_key=input.idempotency_key)

    async def call() -> Result:
        cid = m.pk(input.customer_id, "Customer", "customerId")
        if customer is None:
            return await CustomerService(services).update_customer(
                m.actor_of(info),
                request,
                cid,
                email=input.email,
                name=input.name,
                time_zone=input.time_zone,
                billing_address=_address(input.billing_address),
                tax_id=input.tax_id,
                tax_exempt=input.tax_exempt,
                tax_exempt_reason=input.tax_exempt_reason,
                common=common,
            )
        if cid != customer:
            raise NotFound(f"customer {input.customer_id} does not exist", field=["customerId"])
        for name, value in (
            ("email", input.email),
            ("name", input.name),
            ("timeZone", input.time_zone),
            ("taxId", input.tax_id),
            ("taxExempt", input.tax_exempt),
            ("taxExemptReason", input.tax_exempt_reason),
        ):
            if value is not None:
                raise _forbidden(f"change {name}: only the billing address", name)
        address = _address(input.billing_address)
        if address is None:
            raise RebillError("give a billingAddress", code="INVALID_INPUT", field=["billingAddress"])
        return await SelfService(services).update_billing_address(customer, common, request, address=address)

    result = await m.guarded(call)
    row = None
    if result.ok:
        row = await info.context.loaders.customer_by_id.load(m.pk(input.customer_id, "Customer", "customerId"))
    return UpdateCustomerPayload(user_errors=m.errors_of(result), customer=Customer.of(row) if row else None)


# -- what a customer token sees ----------------------------------------------


@strawberry.type(description="Who is asking: with a customer token, that customer and their subscriptions")
class Viewer:
    customer_pk: strawberry.Private[int]

    @strawberry.field
    async def customer(self, info: Info) -> Customer:
        row = await info.context.loaders.customer_by_id.load(self.customer_pk)
        return Customer.of(row)

    @strawberry.field(description="The customer's own subscriptions; first is at most 100")
    async def subscriptions(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        last: int | None = None,
        before: str | None = None,
        order_by: SubscriptionOrder | None = None,
    ) -> SubscriptionConnection:
        return await subscription_page(
            info, [S.c.customer_id == self.customer_pk], first, after, last, before, order_by
        )


async def viewer(info: Info) -> Viewer | None:
    """The customer a customer token acts for; null for staff keys."""
    customer = customer_of(info.context.actor)
    return Viewer(customer_pk=customer) if customer is not None else None


# -- mutations a customer token may call ---------------------------------------


async def change_next_renewal_date(
    info: Info, input: inputs.ChangeNextRenewalDateInput
) -> inputs.ChangeNextRenewalDatePayload:
    customer = customer_of(info.context.actor)
    if customer is None:
        return await m.change_next_renewal_date(info, input)

    async def call() -> Result:
        return await SelfService(info.context.services).postpone(
            customer,
            m.common_of(input),
            m.request_of(input),
            m.sub_pk(input),
            date_=input.date,
            shift=m.shift_of(input.shift, "shift"),
        )

    return m.subscription_payload(inputs.ChangeNextRenewalDatePayload, await m.guarded(call))


async def cancel_subscription(info: Info, input: inputs.CancelSubscriptionInput) -> inputs.CancelSubscriptionPayload:
    customer = customer_of(info.context.actor)
    if customer is None:
        return await m.cancel_subscription(info, input)

    async def call() -> Result:
        if input.at_period_end:
            raise _forbidden("cancel at period end: a customer cancels now", "atPeriodEnd")
        if input.refund_last_renewal:
            raise _forbidden("ask for a refund", "refundLastRenewal")
        if input.cancel_fulfillment:
            raise _forbidden("cancel a fulfillment", "cancelFulfillment")
        if input.override_contract:
            raise _forbidden("override a contract", "overrideContract")
        return await SelfService(info.context.services).cancel(
            customer, m.common_of(input), m.request_of(input), m.sub_pk(input)
        )

    return m.subscription_payload(inputs.CancelSubscriptionPayload, await m.guarded(call), refund=None)


async def renew_now(info: Info, input: inputs.RenewNowInput) -> inputs.RenewNowPayload:
    customer = customer_of(info.context.actor)
    if customer is None:
        return await m.renew_now(info, input)

    async def call() -> Result:
        if input.unit_price is not None or input.product_id is not None or input.consent_reference is not None:
            raise _forbidden("change the price or the product", "unitPrice")
        return await SelfService(info.context.services).renew(
            customer, m.common_of(input), m.request_of(input), m.sub_pk(input)
        )

    return m.subscription_payload(inputs.RenewNowPayload, await m.guarded(call))


async def set_payment_method(info: Info, input: inputs.SetPaymentMethodInput) -> inputs.SetPaymentMethodPayload:
    customer = customer_of(info.context.actor)
    if customer is None:
        return await m.set_payment_method(info, input)

    async def call() -> Result:
        return await SelfService(info.context.services).set_payment_method(
            customer,
            m.common_of(input),
            m.request_of(input),
            m.sub_pk(input),
            payment_method_id=m.pk(input.payment_method_id, "PaymentMethod", "paymentMethodId"),
        )

    return m.subscription_payload(inputs.SetPaymentMethodPayload, await m.guarded(call))


async def add_payment_method(info: Info, input: inputs.AddPaymentMethodInput) -> inputs.AddPaymentMethodPayload:
    customer = customer_of(info.context.actor)
    if customer is None:
        return await m.add_payment_method(info, input)

    async def call() -> Result:
        if m.pk(input.customer_id, "Customer", "customerId") != customer:
            raise NotFound(f"customer {input.customer_id} does not exist", field=["customerId"])
        if input.kind is not PaymentKind.CARD:
            raise _forbidden("add a payment method other than a card", "kind")
        return await SelfService(info.context.services).add_card(
            customer,
            Common(),
            m.request_of(input),
            gateway_token=input.gateway_token or "",
            exp_month=input.exp_month,
            exp_year=input.exp_year,
            make_default=input.make_default,
        )

    result = await m.guarded(call)
    pm = None
    if result.ok:
        row = await info.context.loaders.payment_method_by_id.load(result.extra["paymentMethodId"])
        pm = m.PaymentMethod.of(row)
    return inputs.AddPaymentMethodPayload(user_errors=m.errors_of(result), payment_method=pm)
