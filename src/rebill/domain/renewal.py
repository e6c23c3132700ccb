"""Renewals, charges and refunds as the rules see them."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from rebill.domain.invoice import DocLine
from rebill.domain.money import Money
from rebill.domain.subscription import PaymentKind


class RenewalKind(enum.StrEnum):
    INITIAL = "INITIAL"
    SCHEDULED = "SCHEDULED"
    MANUAL = "MANUAL"
    EARLY = "EARLY"
    FORCED = "FORCED"


class RenewalStatus(enum.StrEnum):
    PENDING = "PENDING"
    PAID = "PAID"
    FAILED = "FAILED"
    REFUNDED = "REFUNDED"
    PARTIALLY_REFUNDED = "PARTIALLY_REFUNDED"
    VOID = "VOID"


class FulfillmentStatus(enum.StrEnum):
    NONE = "NONE"
    PENDING = "PENDING"
    SHIPPED = "SHIPPED"
    CANCELLED = "CANCELLED"


@dataclass(frozen=True, slots=True)
class RenewalInfo:
    """A renewal already recorded, as the rules need it."""

    id: int
    subscription_id: int
    cycle: int
    kind: RenewalKind
    status: RenewalStatus
    period_start: date
    period_end: date
    amount: Money
    refunded: Money
    attempts: int = 0
    next_retry_date: date | None = None
    fulfillment: FulfillmentStatus = FulfillmentStatus.NONE
    gateway_id: str | None = None
    payment_kind: PaymentKind | None = None
    adjustment: bool = False
    idempotency_key: str | None = None
    created_at: datetime | None = None

    @property
    def refundable(self) -> Money:
        return self.amount - self.refunded


@dataclass(frozen=True, slots=True)
class Charge:
    """A renewal to record and (when it bills something) to charge.

    ``renewal_id`` set means an existing renewal is charged again (a retry).
    A negative ``amount`` is a credit: recorded, never sent to a gateway.
    ``lines`` are the invoice lines that explain ``amount`` (what they bill
    beyond it is credit the customer had on balance).
    """

    kind: RenewalKind
    cycle: int
    period_start: date
    period_end: date
    amount: Money
    adjustment: bool = False
    fulfillment: FulfillmentStatus = FulfillmentStatus.NONE
    renewal_id: int | None = None
    lines: tuple[DocLine, ...] = ()


@dataclass(frozen=True, slots=True)
class Refund:
    renewal: RenewalInfo
    amount: Money

    @property
    def new_status(self) -> RenewalStatus:
        if self.renewal.refunded + self.amount == self.renewal.amount:
            return RenewalStatus.REFUNDED
        return RenewalStatus.PARTIALLY_REFUNDED


@dataclass(frozen=True, slots=True)
class Event:
    """An outbox message caused by the change (a notification or a partner event)."""

    kind: str
    payload: dict[str, Any] = field(default_factory=dict)
