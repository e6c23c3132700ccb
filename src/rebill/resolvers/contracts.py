"""Contract mutations: parse the input, call the service, build the payload."""

from __future__ import annotations

from strawberry import UNSET
from strawberry.types import Info

from rebill.domain import contract as rules
from rebill.domain.cadence import Cadence, IntervalUnit
from rebill.domain.errors import RebillError
from rebill.resolvers.mutations import actor_of, common_of, guarded, money, request_of, sub_pk, subscription_payload
from rebill.schema import contracts as types
from rebill.schema.inputs import CadenceInput
from rebill.services.contracts import ContractService
from rebill.services.runtime import Result


def _term(value: CadenceInput | None) -> Cadence | None:
    if value is None:
        return None
    try:
        return Cadence(IntervalUnit(value.unit), value.count)
    except RebillError as exc:
        raise exc.with_field("term") from None


def _action(value: types.TermEndAction | None) -> rules.TermEndAction | None:
    return rules.TermEndAction(value.name) if value is not None else None


async def attach_contract(info: Info, input: types.AttachContractInput) -> types.AttachContractPayload:
    async def call() -> Result:
        terms = rules.Terms(
            term=_term(input.term),
            start_date=input.start_date,
            notice_days=input.notice_days,
            action=_action(input.action_at_term_end),
            early_termination_fee=money(input.early_termination_fee, "earlyTerminationFee"),
        )
        return await ContractService(info.context.services).attach(
            actor_of(info), common_of(input), request_of(input), sub_pk(input), terms
        )

    return subscription_payload(types.AttachContractPayload, await guarded(call))


async def update_contract(info: Info, input: types.UpdateContractInput) -> types.UpdateContractPayload:
    async def call() -> Result:
        fee = input.early_termination_fee
        terms = rules.Terms(
            term=_term(input.term),
            start_date=input.start_date,
            notice_days=input.notice_days,
            action=_action(input.action_at_term_end),
            **({} if fee is UNSET else {"early_termination_fee": money(fee, "earlyTerminationFee")}),
        )
        return await ContractService(info.context.services).update(
            actor_of(info), common_of(input), request_of(input), sub_pk(input), terms
        )

    return subscription_payload(types.UpdateContractPayload, await guarded(call))


async def remove_contract(info: Info, input: types.RemoveContractInput) -> types.RemoveContractPayload:
    async def call() -> Result:
        return await ContractService(info.context.services).remove(
            actor_of(info), common_of(input), request_of(input), sub_pk(input)
        )

    return subscription_payload(types.RemoveContractPayload, await guarded(call))
