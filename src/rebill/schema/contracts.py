"""Contract terms as the API shows them (API.md "Contract terms")."""

from __future__ import annotations

import enum
from datetime import date

import strawberry

from rebill.domain import contract as rules
from rebill.schema.catalog import Cadence
from rebill.schema.common import Money, MoneyInput
from rebill.schema.inputs import CadenceInput, SubscriptionMutationInput, SubscriptionPayload


@strawberry.enum(description="What happens when a contract's term ends.")
class TermEndAction(enum.Enum):
    RENEW = strawberry.enum_value("RENEW", description="A new term of the same length starts")
    EVERGREEN = strawberry.enum_value("EVERGREEN", description="The contract ends; billing goes on without commitment")
    CANCEL = strawberry.enum_value("CANCEL", description="The subscription is cancelled at the term's end")


@strawberry.type(
    description="A subscription's contract: the term running, its notice period, what happens at its end and "
    "the fee an early termination bills. The term ends on a billing date (the end of the period it falls in)."
)
class Contract:
    start_date: date = strawberry.field(description="The first day of the term running")
    end_date: date = strawberry.field(description="The day the term running ends (a billing date)")
    term: Cadence = strawberry.field(description="The length of a term")
    notice_days: int = strawberry.field(description="Days before the term's end from which notice misses it")
    action_at_term_end: TermEndAction = strawberry.field(description="What happens at the term's end")
    early_termination_fee: Money | None = strawberry.field(
        description="What ending it early bills, on an invoice of its own (null: nothing)"
    )
    cancellation_effective_date: date | None = strawberry.field(
        description="When a cancellation given today would take effect (null: nothing commits any more)"
    )

    @classmethod
    def of(cls, contract: rules.Contract, effective: date | None) -> Contract:
        fee = contract.early_termination_fee
        return cls(
            start_date=contract.start_date,
            end_date=contract.end_date,
            term=Cadence(unit=contract.term.unit, count=contract.term.count),
            notice_days=contract.notice_days,
            action_at_term_end=TermEndAction(contract.action.value),
            early_termination_fee=Money.of(fee) if fee is not None else None,
            cancellation_effective_date=effective,
        )


@strawberry.input(description="Put a subscription under contract.")
class AttachContractInput(SubscriptionMutationInput):
    term: CadenceInput = strawberry.field(description="The length of a term, such as 12 MONTH")
    start_date: date | None = strawberry.field(
        default=None, description="The first day of the first term (default: the current period's start)"
    )
    notice_days: int = strawberry.field(default=0, description="The notice period, in days before a term's end")
    action_at_term_end: TermEndAction = strawberry.field(
        default=TermEndAction.RENEW, description="What happens at a term's end"
    )
    early_termination_fee: MoneyInput | None = strawberry.field(
        default=None, description="What ending it early bills (in the subscription's currency)"
    )


@strawberry.input(description="Change a contract's terms; fields left out keep their value.")
class UpdateContractInput(SubscriptionMutationInput):
    term: CadenceInput | None = strawberry.field(default=None, description="The length of a term")
    start_date: date | None = strawberry.field(default=None, description="The first day of the term running")
    notice_days: int | None = strawberry.field(default=None, description="The notice period, in days")
    action_at_term_end: TermEndAction | None = strawberry.field(
        default=None, description="What happens at a term's end"
    )
    early_termination_fee: MoneyInput | None = strawberry.field(
        default=strawberry.UNSET, description="What ending it early bills (null: nothing)"
    )


@strawberry.input(description="End a subscription's contract now: nothing is billed.")
class RemoveContractInput(SubscriptionMutationInput):
    pass


@strawberry.type(description="The subscription under its new contract.")
class AttachContractPayload(SubscriptionPayload):
    pass


@strawberry.type(description="The subscription with its contract's new terms.")
class UpdateContractPayload(SubscriptionPayload):
    pass


@strawberry.type(description="The subscription without its contract.")
class RemoveContractPayload(SubscriptionPayload):
    pass
