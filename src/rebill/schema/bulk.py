"""Bulk plans, previews and runs in GraphQL.

``BulkPlanInput`` has the shape of a plan file; the resolvers turn it into
that file's JSON (:func:`plan_json`) and the one validator in
:mod:`rebill.bulk.plan` checks it, so a plan means the same thing from the
API and from ``rebill bulk``.
"""

from __future__ import annotations

import dataclasses
import enum
from datetime import date, datetime
from typing import Any, cast

import strawberry
from strawberry.scalars import JSON
from strawberry.types import Info

from rebill.bulk.preview import Preview, SampleRow, SegmentPreview, money_list
from rebill.bulk.runs import ItemView, RunView
from rebill.schema.common import (
    FieldChange,
    Money,
    MoneyInput,
    Node,
    PageInfo,
    changes_of,
    page_info,
    to_global_id,
)
from rebill.schema.enums import GatewayMode, RenewalType
from rebill.schema.inputs import Payload, ShiftInput, SubscriptionFilter
from rebill.schema.invoices import InvoicingSettingsInput

# -- plan input ----------------------------------------------------------------


@strawberry.input
class BulkSetNextRenewalDateInput:
    date: date


@strawberry.input
class BulkSetUnitPriceInput:
    unit_price: MoneyInput
    product_id: strawberry.ID | None = strawberry.field(default=None, description="Only items of this product")
    consent_reference: str | None = strawberry.field(default=None, description="Needed when the price goes up")


@strawberry.input(description='percent ("-10" is ten percent off) or a signed amount per unit, not both.')
class BulkAdjustPriceInput:
    percent: str | None = None
    amount: MoneyInput | None = None
    product_id: strawberry.ID | None = None
    consent_reference: str | None = None


@strawberry.input
class BulkSetQuantityInput:
    quantity: int
    product_id: strawberry.ID | None = None
    consent_reference: str | None = None


@strawberry.input
class BulkChangeProfileInput:
    profile_id: strawberry.ID


@strawberry.input(description="A shipping profile of their own (left out: back to their profile's).")
class BulkSetShippingProfileInput:
    shipping_profile_id: strawberry.ID | None = None
    consent_reference: str | None = strawberry.field(
        default=None, description="Who agreed to a higher shipping charge (needed where it rises)"
    )


@strawberry.input
class BulkSetRenewalTypeInput:
    renewal_type: RenewalType


@strawberry.input
class BulkSetGatewayInput:
    gateway_id: str
    mode: GatewayMode = GatewayMode.PREFERRED


@strawberry.input
class BulkCouponInput:
    code: str


@strawberry.input
class BulkCancelInput:
    at_period_end: bool = False
    override_contract: bool = strawberry.field(
        default=False,
        description="Cancel now although a contract commits the subscription (one with a fee to bill is skipped)",
    )


@strawberry.input
class BulkSetMetadataInput:
    metadata: JSON
    merge: bool = True


@strawberry.input(one_of=True, description="One action: exactly one field. Flags (suspend, activate…) take true.")
class BulkActionInput:
    shift_next_renewal: ShiftInput | None = strawberry.UNSET
    set_next_renewal_date: BulkSetNextRenewalDateInput | None = strawberry.UNSET
    set_unit_price: BulkSetUnitPriceInput | None = strawberry.UNSET
    adjust_price: BulkAdjustPriceInput | None = strawberry.UNSET
    set_quantity: BulkSetQuantityInput | None = strawberry.UNSET
    change_profile: BulkChangeProfileInput | None = strawberry.UNSET
    set_renewal_type: BulkSetRenewalTypeInput | None = strawberry.UNSET
    set_gateway: BulkSetGatewayInput | None = strawberry.UNSET
    clear_gateway: bool | None = strawberry.UNSET
    apply_coupon: BulkCouponInput | None = strawberry.UNSET
    remove_coupon: BulkCouponInput | None = strawberry.UNSET
    suspend: bool | None = strawberry.UNSET
    activate: bool | None = strawberry.UNSET
    cancel: BulkCancelInput | None = strawberry.UNSET
    set_metadata: BulkSetMetadataInput | None = strawberry.UNSET
    set_invoicing: InvoicingSettingsInput | None = strawberry.field(
        default=strawberry.UNSET, description="Change the invoicing settings (the updateInvoicing fields)"
    )
    set_shipping_profile: BulkSetShippingProfileInput | None = strawberry.field(
        default=strawberry.UNSET, description="Give them a shipping profile (setShippingProfile)"
    )


@strawberry.input(description="A further filter; a segment without one takes every subscription left.")
class BulkSegmentInput:
    name: str
    when: SubscriptionFilter | None = None
    actions: list[BulkActionInput]


@strawberry.input(description="The same shape as a `rebill bulk` plan file.")
class BulkPlanInput:
    filter: SubscriptionFilter | None = None
    segments: list[BulkSegmentInput]
    limit: int | None = None


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(w.capitalize() for w in rest)


def plan_json(value: Any) -> Any:
    """A Strawberry input as the plan file's JSON: camelCase keys, unset and null fields left out."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out = {}
        for f in dataclasses.fields(value):
            item = getattr(value, f.name)
            if item is None or item is strawberry.UNSET:
                continue
            out[_camel(f.name)] = plan_json(item)
        return out
    if isinstance(value, list):
        return [plan_json(v) for v in value]
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, date):
        return value.isoformat()
    return value


# -- preview -------------------------------------------------------------------


@strawberry.type
class BulkRefusalReason:
    code: str
    count: int
    message: str = strawberry.field(description="The domain's message for the first such subscription")
    example_subscription_id: strawberry.ID


@strawberry.type
class BulkRefused:
    count: int
    reasons: list[BulkRefusalReason]


@strawberry.type
class BulkSampleRow:
    subscription_id: strawberry.ID
    refused: bool
    code: str | None
    reason: str | None
    changes: list[FieldChange]

    @classmethod
    def of(cls, row: SampleRow) -> BulkSampleRow:
        return cls(
            subscription_id=strawberry.ID(to_global_id("Subscription", row.subscription_id)),
            refused=row.refused,
            code=row.code,
            reason=row.reason,
            changes=changes_of(row.changes),
        )


@strawberry.type(description="What a bulk plan would do to one of its segments.")
class BulkSegmentPreview:
    name: str = strawberry.field(description="The segment's name")
    matched: int = strawberry.field(description="Subscriptions in the segment")
    billed_before: list[Money] = strawberry.field(description="What one renewal of each bills, per currency")
    billed_after: list[Money] = strawberry.field(
        description="What one renewal of each would bill after the plan, per currency"
    )
    charged_before: list[Money] = strawberry.field(
        description="What the next invoice of each would charge now, with shipping and tax, per currency"
    )
    charged_after: list[Money] = strawberry.field(description="The same once the plan ran")
    mrr_before: list[Money] = strawberry.field(
        description="The segment's monthly recurring revenue now (revenueMetrics' rule), per currency"
    )
    mrr_after: list[Money] = strawberry.field(
        description="Its MRR once the plan ran (a refused subscription keeps its own), per currency"
    )
    refused: BulkRefused = strawberry.field(description="Subscriptions whose actions would be refused, by reason")
    sample: list[BulkSampleRow] = strawberry.field(description="A few subscriptions with their changes")

    @classmethod
    def of(cls, s: SegmentPreview) -> BulkSegmentPreview:
        return cls(
            name=s.name,
            matched=s.matched,
            billed_before=[Money.of(m) for m in money_list(s.billed_before)],
            billed_after=[Money.of(m) for m in money_list(s.billed_after)],
            charged_before=[Money.of(m) for m in money_list(s.charged_before)],
            charged_after=[Money.of(m) for m in money_list(s.charged_after)],
            mrr_before=[Money.of(m) for m in money_list(s.mrr_before)],
            mrr_after=[Money.of(m) for m in money_list(s.mrr_after)],
            refused=BulkRefused(
                count=s.refused,
                reasons=[
                    BulkRefusalReason(
                        code=r.code,
                        count=r.count,
                        message=r.message,
                        example_subscription_id=strawberry.ID(to_global_id("Subscription", r.example_id)),
                    )
                    for r in s.refusals
                ],
            ),
            sample=[BulkSampleRow.of(r) for r in s.sample],
        )


@strawberry.type(description="What a plan would do; nothing is written. Pass previewedAt to startBulkRun as asOf.")
class BulkPreview:
    previewed_at: datetime = strawberry.field(description="When it was computed: pass it as asOf to start the run")
    plan_hash: str = strawberry.field(description="A hash of the plan, the same in the run it starts")
    matched: int = strawberry.field(description="Subscriptions the filter matched")
    unsegmented: int = strawberry.field(description="Matched subscriptions no segment took")
    already_applied: int = strawberry.field(description="Changed by an earlier run of this plan: left alone")
    billed_before: list[Money] = strawberry.field(
        description="What one renewal of every segmented subscription bills now, per currency"
    )
    billed_after: list[Money] = strawberry.field(description="What it would bill after the plan, per currency")
    charged_before: list[Money] = strawberry.field(
        description="What the next invoices would charge now, with shipping and tax, per currency"
    )
    charged_after: list[Money] = strawberry.field(description="The same once the plan ran")
    mrr_before: list[Money] = strawberry.field(
        description="Monthly recurring revenue of every segmented subscription now (revenueMetrics' rule), per currency"
    )
    mrr_after: list[Money] = strawberry.field(description="Their MRR once the plan ran, per currency")
    segments: list[BulkSegmentPreview] = strawberry.field(description="Each segment's preview, in plan order")

    @classmethod
    def of(cls, p: Preview) -> BulkPreview:
        return cls(
            previewed_at=p.previewed_at,
            plan_hash=p.plan_hash,
            matched=p.matched,
            unsegmented=p.unsegmented,
            already_applied=p.already_applied,
            billed_before=[Money.of(m) for m in money_list(p.total("billed_before"))],
            billed_after=[Money.of(m) for m in money_list(p.total("billed_after"))],
            charged_before=[Money.of(m) for m in money_list(p.total("charged_before"))],
            charged_after=[Money.of(m) for m in money_list(p.total("charged_after"))],
            mrr_before=[Money.of(m) for m in money_list(p.total("mrr_before"))],
            mrr_after=[Money.of(m) for m in money_list(p.total("mrr_after"))],
            segments=[BulkSegmentPreview.of(s) for s in p.segments],
        )


# -- runs ----------------------------------------------------------------------


@strawberry.enum
class BulkRunStatus(enum.StrEnum):
    QUEUED = "QUEUED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    REVERTED = "REVERTED"


@strawberry.enum
class BulkItemOutcome(enum.StrEnum):
    APPLIED = "APPLIED"
    SKIPPED = "SKIPPED"
    FAILED = "FAILED"
    CONFLICT = "CONFLICT"
    REVERTED = "REVERTED"


@strawberry.type
class BulkRunItem(Node):
    subscription_id: strawberry.ID
    segment: str | None
    outcome: BulkItemOutcome
    code: str | None = strawberry.field(description="The refusal code of a SKIPPED item, CONFLICT, …")
    reason: str | None
    changes: list[FieldChange]
    consent_reference: str | None = strawberry.field(
        description="The consent reference the plan's price actions gave for this change (who agreed, when, how)."
    )

    @classmethod
    def of(cls, item: ItemView) -> BulkRunItem:
        return cls(
            id=strawberry.ID(to_global_id("BulkRunItem", item.id)),
            subscription_id=strawberry.ID(to_global_id("Subscription", item.subscription_id)),
            segment=item.segment,
            outcome=BulkItemOutcome(item.outcome),
            code=item.code,
            reason=item.reason,
            changes=changes_of(item.changes),
            consent_reference=item.consent_reference,
        )

    @classmethod
    def of_row(cls, row: Any) -> BulkRunItem:
        """A ``bulk_run_items`` row as the API shows it."""
        return cls.of(_item_view(row))


@strawberry.type
class BulkRunItemEdge:
    cursor: str
    node: BulkRunItem


@strawberry.type
class BulkRunItemConnection:
    edges: list[BulkRunItemEdge]
    page_info: PageInfo
    total_count: int


@strawberry.type(description="A bulk run: a plan applied in the background, chunk by chunk.")
class BulkRun(Node):
    status: BulkRunStatus
    dry_run: bool
    limit: int | None
    total: int
    processed: int
    applied: int
    skipped: int
    failed: int
    conflicts: int
    created_by: str
    created_at: datetime
    as_of: datetime = strawberry.field(description="A subscription changed after this is a CONFLICT")
    started_at: datetime | None
    finished_at: datetime | None
    reverted_at: datetime | None
    cancel_requested: bool
    error: str | None
    plan: JSON
    plan_hash: str
    pk: strawberry.Private[int]

    @classmethod
    def of(cls, run: RunView) -> BulkRun:
        return cls(
            id=strawberry.ID(to_global_id("BulkRun", run.id)),
            status=BulkRunStatus(run.status),
            dry_run=run.dry_run,
            limit=run.limit,
            total=run.total,
            processed=run.processed,
            applied=run.applied,
            skipped=run.skipped,
            failed=run.failed,
            conflicts=run.conflicts,
            created_by=run.created_by,
            created_at=run.created_at,
            as_of=run.as_of,
            started_at=run.started_at,
            finished_at=run.finished_at,
            reverted_at=run.reverted_at,
            cancel_requested=run.cancel_requested,
            error=run.error,
            plan=cast(JSON, run.plan),
            plan_hash=run.plan_hash,
            pk=run.id,
        )

    @strawberry.field(description="Per-subscription results in subscription order; first is at most 100")
    async def items(
        self,
        info: Info,
        first: int | None = None,
        after: str | None = None,
        outcome: BulkItemOutcome | None = None,
        last: int | None = None,
        before: str | None = None,
    ) -> BulkRunItemConnection:
        from rebill.bulk.runs import ITEMS
        from rebill.resolvers.pages import fetch_page

        where = [ITEMS.c.run_id == self.pk]
        if outcome is not None:
            where.append(ITEMS.c.outcome == outcome.value)
        async with info.context.services.sessions() as session:
            page = await fetch_page(session, ITEMS, where, first, after, last=last, before=before)
        edges = [
            BulkRunItemEdge(cursor=c, node=BulkRunItem.of_row(r)) for r, c in zip(page.rows, page.cursors, strict=True)
        ]
        return BulkRunItemConnection(
            edges=edges,
            page_info=page_info(edges, page.has_next, page.has_previous),
            total_count=page.total,
        )


def _item_view(row: Any) -> ItemView:
    fields = {f.name: getattr(row, f.name) for f in dataclasses.fields(ItemView)}
    return ItemView(**{**fields, "changes": fields["changes"] or []})


# -- mutations -----------------------------------------------------------------


@strawberry.input
class StartBulkRunInput:
    plan: BulkPlanInput
    limit: int | None = strawberry.field(default=None, description="Change at most this many (overrides the plan's)")
    dry_run: bool | None = strawberry.field(default=False, description="Record every would-be outcome, change nothing")
    as_of: datetime | None = strawberry.field(
        default=None, description="The preview's previewedAt: subscriptions changed since are CONFLICT"
    )


@strawberry.input
class CancelBulkRunInput:
    run_id: strawberry.ID


@strawberry.input
class RevertBulkRunInput:
    run_id: strawberry.ID


@strawberry.type
class StartBulkRunPayload(Payload):
    run: BulkRun | None
    dry_run: bool = strawberry.field(default=False, description="The run records would-be outcomes only")


@strawberry.type
class CancelBulkRunPayload(Payload):
    run: BulkRun | None


@strawberry.type
class RevertBulkRunPayload(Payload):
    run: BulkRun | None
    reverted: int = 0
    not_reverted: list[BulkRunItem] = strawberry.field(
        default_factory=list, description="Changed by someone since the run: left as they are"
    )


@strawberry.type
class BulkRunEdge:
    cursor: str
    node: BulkRun


@strawberry.type
class BulkRunConnection:
    edges: list[BulkRunEdge]
    page_info: PageInfo
    total_count: int
