"""Contract terms: attach, update and remove a subscription's contract (DOMAIN.md "Contract terms").

Each change is one domain operation (``domain.contract``) through the one
path of subscription changes: loaded under lock, version checked, saved
with its history entry and its partner event in the same transaction;
a dry run computes everything and stores nothing.
"""

from __future__ import annotations

from typing import Any

from rebill.domain import contract as rules
from rebill.domain.outcome import OpContext, Outcome
from rebill.domain.subscription import SubscriptionState
from rebill.services.runtime import Actor, Common, Result, Services
from rebill.services.subscriptions import SubscriptionService, Unit


class ContractService:
    """Use cases on a subscription's contract."""

    def __init__(self, services: Services) -> None:
        self.subscriptions = SubscriptionService(services)

    async def attach(
        self, actor: Actor, common: Common, request: Any, subscription_id: int, terms: rules.Terms
    ) -> Result:
        async def build(unit: Unit, state: SubscriptionState, ctx: OpContext) -> Outcome:
            return rules.attach(state, ctx, terms)

        return await self.subscriptions.mutate("attachContract", subscription_id, actor, common, request, build)

    async def update(
        self, actor: Actor, common: Common, request: Any, subscription_id: int, terms: rules.Terms
    ) -> Result:
        async def build(unit: Unit, state: SubscriptionState, ctx: OpContext) -> Outcome:
            return rules.update(state, ctx, terms)

        return await self.subscriptions.mutate("updateContract", subscription_id, actor, common, request, build)

    async def remove(self, actor: Actor, common: Common, request: Any, subscription_id: int) -> Result:
        async def build(unit: Unit, state: SubscriptionState, ctx: OpContext) -> Outcome:
            return rules.remove(state, ctx)

        return await self.subscriptions.mutate("removeContract", subscription_id, actor, common, request, build)
