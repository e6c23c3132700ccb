"""GraphQL enums: the domain's own enums, exposed under the contract's names."""

from __future__ import annotations

import enum

import strawberry

from rebill.domain.cadence import AnchorPolicy as _AnchorPolicy
from rebill.domain.cadence import IntervalUnit as _IntervalUnit
from rebill.domain.lifecycle import RenewNowMode as _RenewNowMode
from rebill.domain.pricing import CouponDuration as _CouponDuration
from rebill.domain.proration import Proration as _Proration
from rebill.domain.renewal import FulfillmentStatus as _FulfillmentStatus
from rebill.domain.renewal import RenewalKind as _RenewalKind
from rebill.domain.renewal import RenewalStatus as _RenewalStatus
from rebill.domain.status import SubscriptionStatus as _SubscriptionStatus
from rebill.domain.subscription import FinalFailureAction as _FinalFailureAction
from rebill.domain.subscription import GatewayMode as _GatewayMode
from rebill.domain.subscription import PaymentKind as _PaymentKind
from rebill.domain.subscription import ProductKind as _ProductKind
from rebill.domain.subscription import RenewalType as _RenewalType
from rebill.domain.updates import Effective as _Effective

SubscriptionStatus = strawberry.enum(_SubscriptionStatus, name="SubscriptionStatus")
RenewalType = strawberry.enum(_RenewalType, name="RenewalType")
IntervalUnit = strawberry.enum(_IntervalUnit, name="IntervalUnit")
AnchorPolicy = strawberry.enum(_AnchorPolicy, name="AnchorPolicy")
GatewayMode = strawberry.enum(_GatewayMode, name="GatewayMode")
RenewalStatus = strawberry.enum(_RenewalStatus, name="RenewalStatus")
RenewalKind = strawberry.enum(_RenewalKind, name="RenewalKind")
FulfillmentStatus = strawberry.enum(_FulfillmentStatus, name="FulfillmentStatus")
Effective = strawberry.enum(_Effective, name="Effective")
Proration = strawberry.enum(_Proration, name="Proration")
RenewNowMode = strawberry.enum(_RenewNowMode, name="RenewNowMode")
ProductKind = strawberry.enum(_ProductKind, name="ProductKind")
PaymentMethodKind = strawberry.enum(_PaymentKind, name="PaymentMethodKind")
FinalFailureAction = strawberry.enum(_FinalFailureAction, name="FinalFailureAction")
CouponDuration = strawberry.enum(_CouponDuration, name="CouponDuration")


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
