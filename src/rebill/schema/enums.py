"""GraphQL enums: the domain's own enums, exposed under the contract's names."""

from __future__ import annotations

import enum

import strawberry

from rebill.domain.cadence import AnchorPolicy, IntervalUnit
from rebill.domain.lifecycle import RenewNowMode
from rebill.domain.periods import MetricsInterval
from rebill.domain.pricing import CouponDuration
from rebill.domain.proration import Proration
from rebill.domain.renewal import FulfillmentStatus, RenewalKind, RenewalStatus
from rebill.domain.status import SubscriptionStatus
from rebill.domain.subscription import FinalFailureAction, GatewayMode, PaymentKind, ProductKind, RenewalType
from rebill.domain.updates import Effective

strawberry.enum(SubscriptionStatus, name="SubscriptionStatus")
strawberry.enum(RenewalType, name="RenewalType")
strawberry.enum(IntervalUnit, name="IntervalUnit")
strawberry.enum(AnchorPolicy, name="AnchorPolicy")
strawberry.enum(GatewayMode, name="GatewayMode")
strawberry.enum(RenewalStatus, name="RenewalStatus")
strawberry.enum(RenewalKind, name="RenewalKind")
strawberry.enum(FulfillmentStatus, name="FulfillmentStatus")
strawberry.enum(Effective, name="Effective")
strawberry.enum(Proration, name="Proration")
strawberry.enum(RenewNowMode, name="RenewNowMode")
strawberry.enum(ProductKind, name="ProductKind")
strawberry.enum(PaymentKind, name="PaymentMethodKind")
PaymentMethodKind = PaymentKind
strawberry.enum(FinalFailureAction, name="FinalFailureAction")
strawberry.enum(CouponDuration, name="CouponDuration")
strawberry.enum(MetricsInterval, name="MetricsInterval")


@strawberry.enum(description="What an outbox notification tells the customer or a partner.")
class NotificationKind(enum.StrEnum):
    RENEWAL_RECEIPT = "RENEWAL_RECEIPT"
    PAYMENT_DECLINED = "PAYMENT_DECLINED"
    RENEWAL_REMINDER = "RENEWAL_REMINDER"
    SUBSCRIPTION_CANCELLED = "SUBSCRIPTION_CANCELLED"
    SUBSCRIPTION_SUSPENDED = "SUBSCRIPTION_SUSPENDED"
    PAYMENT_DUE = "PAYMENT_DUE"
    SUBSCRIPTION_EXPIRED = "SUBSCRIPTION_EXPIRED"
    AWAITING_REINSTATE = "AWAITING_REINSTATE"
    BULK_RUN_COMPLETED = "BULK_RUN_COMPLETED"
    BULK_RUN_FAILED = "BULK_RUN_FAILED"
    SUBSCRIPTION_STARTED = "SUBSCRIPTION_STARTED"
    SUBSCRIPTION_RESUMED = "SUBSCRIPTION_RESUMED"
    MERCHANT_SUBSCRIPTION_CANCELLED = "MERCHANT_SUBSCRIPTION_CANCELLED"
    SUBSCRIPTION_CREATED = "SUBSCRIPTION_CREATED"
    SUBSCRIPTION_UPDATED = "SUBSCRIPTION_UPDATED"
    SUBSCRIPTION_ACTIVATED = "SUBSCRIPTION_ACTIVATED"
    RENEWAL_REFUNDED = "RENEWAL_REFUNDED"
    INVOICE_CREATED = "INVOICE_CREATED"
    INVOICE_FINALIZED = "INVOICE_FINALIZED"
    INVOICE_PAID = "INVOICE_PAID"
    INVOICE_VOIDED = "INVOICE_VOIDED"
    INVOICE_UNCOLLECTIBLE = "INVOICE_UNCOLLECTIBLE"
    CREDIT_NOTE_CREATED = "CREDIT_NOTE_CREATED"
    INVOICE_ISSUED = "INVOICE_ISSUED"
    SUBSCRIPTION_CONTRACT_ATTACHED = "SUBSCRIPTION_CONTRACT_ATTACHED"
    SUBSCRIPTION_CONTRACT_UPDATED = "SUBSCRIPTION_CONTRACT_UPDATED"
    SUBSCRIPTION_CONTRACT_REMOVED = "SUBSCRIPTION_CONTRACT_REMOVED"
    SUBSCRIPTION_CONTRACT_RENEWED = "SUBSCRIPTION_CONTRACT_RENEWED"
    SUBSCRIPTION_CONTRACT_ENDED = "SUBSCRIPTION_CONTRACT_ENDED"
