"""The root Query and Mutation types and the Schema, with its protections."""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import GraphQLError
from graphql.validation import NoSchemaIntrospectionCustomRule
from strawberry.extensions import AddValidationRules, MaskErrors, ParserCache

from rebill.config import Settings
from rebill.resolvers import bulk as b
from rebill.resolvers import contracts as ct
from rebill.resolvers import customers as c
from rebill.resolvers import forecast as fc
from rebill.resolvers import invoices as inv
from rebill.resolvers import mutations as m
from rebill.resolvers import portal as p
from rebill.resolvers import queries as q
from rebill.resolvers import revenue as rv
from rebill.resolvers import taxes as tx
from rebill.resolvers import webhooks as w
from rebill.resolvers.auth import AnyActor, CanBulk, CanRead, CanRefund, CanWrite, CanWriteOrCustomer
from rebill.resolvers.client_errors import client_error_extensions
from rebill.resolvers.cost import cost_extensions
from rebill.resolvers.limits import limit_extensions
from rebill.schema.common import ApiError
from rebill.schema.sdl import RebillSchema


def _read(resolver: Any, description: str | None = None) -> Any:
    return strawberry.field(resolver=resolver, permission_classes=[CanRead], description=description)


def _write(resolver: Any, description: str | None = None) -> Any:
    return strawberry.mutation(resolver=resolver, permission_classes=[CanWrite], description=description)


def _write_or_customer(resolver: Any, description: str | None = None) -> Any:
    """A mutation a customer token may call too, on its own subscriptions (resolvers/portal.py)."""
    return strawberry.mutation(resolver=resolver, permission_classes=[CanWriteOrCustomer], description=description)


@strawberry.type
class Query:
    node = _read(q.node, "Any object by its global id")
    nodes = _read(c.nodes, "Objects by global id (at most 100), in the order asked; null for an unknown id")
    subscription = _read(q.subscription)
    subscriptions = _read(q.subscriptions, "Subscriptions matching a filter, by id unless orderBy says otherwise")
    renewal = _read(q.renewal)
    renewals = _read(q.renewals)
    profile = _read(q.profile)
    profiles = _read(q.profiles)
    customer = _read(q.customer)
    customers = _read(c.customers, "Customers matching a filter, oldest first")
    products = _read(q.products)
    coupon = _read(q.coupon)
    notifications = _read(q.notifications, "Outbox rows: emails to customers and partner events")
    invoice = _read(inv.invoice, "An invoice or pro forma by its global id")
    invoices = _read(inv.invoices, "Invoices matching a filter, newest first")
    credit_note = _read(inv.credit_note, "A credit note by its global id")
    credit_notes = _read(inv.credit_notes, "Credit notes, of one invoice or all, newest first")
    tax_rates = _read(tx.tax_rates, "Tax rates, archived ones too, oldest first")
    shipping_profiles = _read(tx.shipping_profiles, "Shipping profiles, archived ones too, oldest first")
    billing_forecast = _read(fc.billing_forecast)
    revenue_metrics = _read(
        rv.revenue_metrics,
        "MRR and its movements, subscription counts, and what was billed, collected and refunded, per period of "
        "the seller's calendar (at most 400 points)",
    )
    viewer = strawberry.field(
        resolver=p.viewer,
        permission_classes=[AnyActor],
        description="With a customer token: that customer and their subscriptions; null for staff keys",
    )
    bulk_preview = strawberry.field(
        resolver=b.bulk_preview, permission_classes=[CanBulk], description="What a bulk plan would do; writes nothing"
    )
    bulk_run = strawberry.field(resolver=b.bulk_run, permission_classes=[CanBulk])
    bulk_runs = strawberry.field(resolver=b.bulk_runs, permission_classes=[CanBulk])
    webhook_endpoints = strawberry.field(
        resolver=w.webhook_endpoints, permission_classes=[w.CanAdmin], description="Webhook endpoints, oldest first"
    )
    webhook_deliveries = strawberry.field(
        resolver=w.webhook_deliveries, permission_classes=[w.CanAdmin], description="Webhook deliveries, newest first"
    )


@strawberry.type
class Mutation:
    create_product = _write(m.create_product)
    void_invoice = _write(inv.void_invoice, "Forgive an open or uncollectible invoice, with a reason")
    finalize_invoice = _write(inv.finalize_invoice, "Finalize a draft now: refreshed, numbered and charged")
    mark_invoice_paid = _write(inv.mark_invoice_paid, "Record a payment made outside the gateways: it pays the invoice")
    refresh_invoice = _write(inv.refresh_invoice, "Recompute a draft from its subscription (one-off lines kept)")
    delete_draft_invoice = _write(inv.delete_draft_invoice, "Delete a draft: its period is skipped")
    add_invoice_line = _write(inv.add_invoice_line, "Add a one-off line to a draft")
    remove_invoice_line = _write(inv.remove_invoice_line, "Remove a line from a draft")
    create_credit_note = strawberry.mutation(
        resolver=inv.create_credit_note,
        permission_classes=[CanWrite],
        description="Credit part of an invoice to the customer's balance (write), or refund it (refund: true)",
    )
    update_invoicing = _write(
        m.update_invoicing, "Change a subscription's purchase order, memo, document type, drafts or payment terms"
    )
    create_tax_rate = _write(tx.create_tax_rate, "A tax rate for a country or region (one active per place)")
    archive_tax_rate = _write(tx.archive_tax_rate, "Archive a tax rate: it taxes no new invoice")
    create_shipping_profile = _write(tx.create_shipping_profile, "Ordered shipping rates in currencies")
    update_shipping_profile = _write(tx.update_shipping_profile, "Rename a shipping profile or list its rates anew")
    archive_shipping_profile = _write(tx.archive_shipping_profile, "Archive a shipping profile: no new assignment")
    set_shipping_profile = _write(
        tx.set_shipping_profile,
        "A subscription's own shipping profile (null: its profile's); a higher charge needs consent",
    )
    create_profile = _write(m.create_profile)
    update_profile = _write(m.update_profile)
    create_customer = _write(m.create_customer)
    add_payment_method = _write_or_customer(p.add_payment_method, "Add a card, external or offline payment method")
    update_customer = _write_or_customer(p.update_customer, "Staff: any field; a customer token: its billing address")
    create_customer_portal_session = strawberry.mutation(
        resolver=p.create_customer_portal_session,
        permission_classes=[CanWrite, CanRead],
        description="A one-time portal link and a customer-scoped bearer token; needs the read and write scopes",
    )
    create_coupon = _write(m.create_coupon)
    create_subscription = _write(m.create_subscription)

    change_next_renewal_date = _write_or_customer(
        p.change_next_renewal_date, "A date or a shift; a trial moves with it"
    )
    update_item = _write(m.update_item)
    add_item = _write(m.add_item)
    remove_item = _write(m.remove_item)
    apply_coupon = _write(m.apply_coupon)
    remove_coupon = _write(m.remove_coupon)
    change_profile = _write(m.change_profile)
    change_product = _write(m.change_product, "Ends the subscription and creates its replacement")
    update_shipping_address = _write(m.update_shipping_address)
    set_payment_method = _write_or_customer(p.set_payment_method)
    set_gateway = _write(m.set_gateway)
    set_renewal_type = _write(m.set_renewal_type)
    set_end_date = _write(m.set_end_date)
    set_metadata = _write(m.set_metadata)

    update_subscription = _write(m.update_subscription, "Any settings at once; a future effectiveDate stores a phase")
    update_phase = _write(m.update_phase, "Change a phase that has not started")
    cancel_phase = _write(m.cancel_phase, "Drop a phase that has not started")

    suspend_subscription = _write(m.suspend_subscription)
    activate_subscription = _write(m.activate_subscription)
    cancel_subscription = _write_or_customer(p.cancel_subscription)
    resume_subscription = _write(m.resume_subscription, "Undo a scheduled cancellation or end date")
    attach_contract = _write(ct.attach_contract, "Put a subscription under contract (a term, notice, end action, fee)")
    update_contract = _write(ct.update_contract, "Change a contract's terms; fields left out keep their value")
    remove_contract = _write(ct.remove_contract, "End a subscription's contract now; nothing is billed")
    renew_now = _write_or_customer(p.renew_now)
    force_bill = _write(m.force_bill)
    retry_renewal = _write(m.retry_renewal)
    refund_renewal = strawberry.mutation(resolver=m.refund_renewal, permission_classes=[CanRefund])
    update_fulfillment = _write(m.update_fulfillment, "Mark a renewal's shipment SHIPPED or CANCELLED")
    start_bulk_run = strawberry.mutation(resolver=b.start_bulk_run, permission_classes=[CanBulk])
    cancel_bulk_run = strawberry.mutation(resolver=b.cancel_bulk_run, permission_classes=[CanBulk])
    revert_bulk_run = strawberry.mutation(resolver=b.revert_bulk_run, permission_classes=[CanBulk])
    create_webhook_endpoint = strawberry.mutation(resolver=w.create_webhook_endpoint, permission_classes=[w.CanAdmin])
    update_webhook_endpoint = strawberry.mutation(resolver=w.update_webhook_endpoint, permission_classes=[w.CanAdmin])
    rotate_webhook_secret = strawberry.mutation(resolver=w.rotate_webhook_secret, permission_classes=[w.CanAdmin])
    delete_webhook_endpoint = strawberry.mutation(resolver=w.delete_webhook_endpoint, permission_classes=[w.CanAdmin])
    redeliver_webhook = strawberry.mutation(resolver=w.redeliver_webhook, permission_classes=[w.CanAdmin])


def _should_mask(error: GraphQLError) -> bool:
    """Show our own top-level errors and GraphQL's validation errors; mask everything else."""
    original = error.original_error
    if original is None:
        return False
    if isinstance(original, ApiError):
        return False
    return not (error.extensions and error.extensions.get("code") in {"FORBIDDEN", "UNAUTHENTICATED"})


def build_schema(
    settings: Settings | None = None, *, query: type = Query, mutation: type = Mutation
) -> strawberry.Schema:
    settings = settings or Settings()
    # Depth, aliases, tokens and the expanded size are measured by rebill.resolvers.limits,
    # which also validates (off the event loop, cached by document text).
    rules: list[Any] = []
    if not settings.introspection:
        rules.append(NoSchemaIntrospectionCustomRule)
    extensions: list[Any] = [
        *cost_extensions(settings),
        *limit_extensions(settings),
        lambda: AddValidationRules(rules),
        lambda: MaskErrors(should_mask_error=_should_mask, error_message="Internal error."),
        # Listed after MaskErrors so that it sorts client errors from faults before masking.
        *client_error_extensions(),
        # Dashboards send the same few documents again and again: parse them once.
        lambda: ParserCache(maxsize=512),
    ]
    return RebillSchema(query=query, mutation=mutation, extensions=extensions)
