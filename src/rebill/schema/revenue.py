"""Revenue metrics as the API shows them (API.md "Revenue insight")."""

from __future__ import annotations

from datetime import date

import strawberry

from rebill.schema.common import Money
from rebill.services.revenue import MetricsPoint as Point


@strawberry.type(
    description="MRR and its movements, subscription counts and the money billed, collected and refunded in one "
    "period (a day, week or month) of the seller's calendar. A subscription's MRR is its items after the coupons "
    "its next renewal applies (items that do not renew left out), without shipping or tax, brought to a month "
    "(x 1 monthly, / 12 yearly, x 52 / 12 weekly, x 365 / 12 daily, / the cadence's count) and rounded half-even; "
    "only ACTIVE and OVERDUE subscriptions count. mrr = the previous point's mrr + newMrr + reactivationMrr + "
    "expansionMrr - contractionMrr - churnedMrr."
)
class MetricsPoint:
    period_start: date = strawberry.field(description="The period's first day (the range's first day when clipped)")
    period_end: date = strawberry.field(description="The period's last day, included (the range's last when clipped)")
    mrr: Money = strawberry.field(description="Monthly recurring revenue at the end of the period")
    arr: Money = strawberry.field(description="Annual run rate at the end of the period: 12 x mrr")
    new_mrr: Money = strawberry.field(description="MRR of subscriptions whose MRR left 0 for the first time")
    expansion_mrr: Money = strawberry.field(
        description="MRR added by subscriptions that brought more (a price or quantity raised, an upgrade)"
    )
    contraction_mrr: Money = strawberry.field(
        description="MRR lost by subscriptions that brought less but still some (a discount, fewer seats)"
    )
    churned_mrr: Money = strawberry.field(
        description="MRR lost by subscriptions that went to 0 (cancelled, expired, suspended, awaiting reinstatement)"
    )
    reactivation_mrr: Money = strawberry.field(description="MRR of subscriptions that left 0 again after a churn")
    active_subscriptions: int = strawberry.field(description="ACTIVE and OVERDUE subscriptions at the period's end")
    trialing_subscriptions: int = strawberry.field(description="Subscriptions in TRIAL at the period's end")
    new_subscriptions: int = strawberry.field(
        description="Subscriptions whose MRR left 0 for the first time in the period (a trial counts at conversion)"
    )
    churned_subscriptions: int = strawberry.field(description="Subscriptions whose MRR went to 0 in the period")
    billed: Money = strawberry.field(
        description="Totals of invoices finalized in the period (one voided later too), with shipping and tax"
    )
    collected: Money = strawberry.field(description="Payments received in the period, with shipping and tax")
    refunded: Money = strawberry.field(description="Refunds made in the period, with shipping and tax")
    failed_payments: int = strawberry.field(description="Renewals whose first payment attempt failed in the period")
    recovered_payments: int = strawberry.field(
        description="Renewals paid in the period after an earlier attempt had failed"
    )

    @classmethod
    def of(cls, point: Point) -> MetricsPoint:
        return cls(
            period_start=point.period.start,
            period_end=point.period.end,
            mrr=Money.of(point.mrr),
            arr=Money.of(point.arr),
            new_mrr=Money.of(point.new),
            expansion_mrr=Money.of(point.expansion),
            contraction_mrr=Money.of(point.contraction),
            churned_mrr=Money.of(point.churned),
            reactivation_mrr=Money.of(point.reactivation),
            active_subscriptions=point.active,
            trialing_subscriptions=point.trialing,
            new_subscriptions=point.new_subscriptions,
            churned_subscriptions=point.churned_subscriptions,
            billed=Money.of(point.billed),
            collected=Money.of(point.collected),
            refunded=Money.of(point.refunded),
            failed_payments=point.failed_payments,
            recovered_payments=point.recovered_payments,
        )
