"""Tax rates and shipping profiles: creating, changing and archiving them, and assigning a shipping profile.

A subscription's invoices read the rates and its shipping profile when
they are issued (``db.repositories`` puts them on the state), so what
changes here reaches the next invoice and never an issued one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from rebill.db import tables as t
from rebill.db.repositories import shipping_profile_from_row, tax_rate_from_row
from rebill.domain import shipping as rules
from rebill.domain import tax
from rebill.domain.errors import NotFound, ValidationError
from rebill.domain.money import Money
from rebill.domain.outcome import OpContext, Outcome
from rebill.domain.shipping import ShippingProfile
from rebill.domain.subscription import SubscriptionState
from rebill.domain.updates import set_shipping_profile as set_shipping_profile_rule
from rebill.services.runtime import Actor, Common, Result, Services
from rebill.services.subscriptions import SubscriptionService, Unit, run_in_transaction

TR = t.table_of(t.TaxRate)
SP = t.table_of(t.ShippingProfile)
P = t.table_of(t.Profile)
S = t.table_of(t.Subscription)

_LIVE = ("CANCELLED", "EXPIRED")


class TaxService:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def create_tax_rate(
        self,
        actor: Actor,
        request: Any,
        common: Common,
        *,
        name: str,
        percentage: str,
        inclusive: bool,
        country: str,
        region: str | None,
    ) -> Result:
        async def body(unit: Unit) -> Result:
            clean_name = str(name or "").strip()
            if not clean_name or len(clean_name) > 200:
                raise ValidationError(
                    "a tax rate needs a name of 1 to 200 characters", code="INVALID_TAX_RATE", field=["name"]
                )
            pct = tax.parse_percentage(percentage)
            code = tax.country_code(country)
            place = tax.region_code(code, region)
            conflict = (
                await unit.session.execute(
                    select(TR.c.name).where(
                        TR.c.active, TR.c.country == code, func.coalesce(TR.c.region, "") == (place or "")
                    )
                )
            ).scalar()
            if conflict is not None:
                raise _conflict(conflict, code, place)
            values = {
                "name": clean_name,
                "percentage": pct,
                "inclusive": bool(inclusive),
                "country": code,
                "region": place,
                "created_at": unit.now,
            }
            try:
                async with unit.session.begin_nested():
                    row = (await unit.session.execute(insert(TR).values(**values).returning(TR))).one()
            except IntegrityError:  # another request created one for the same place meanwhile
                raise _conflict(None, code, place) from None
            return Result(extra={"taxRate": row})

        return await run_in_transaction(self.services, "createTaxRate", actor, common, request, body)

    async def archive_tax_rate(self, actor: Actor, request: Any, common: Common, *, tax_rate_id: int) -> Result:
        """Archived, a rate taxes no new invoice; what it taxed keeps it."""

        async def body(unit: Unit) -> Result:
            row = (await unit.session.execute(select(TR).where(TR.c.id == tax_rate_id).with_for_update())).first()
            if row is None:
                raise NotFound(f"tax rate {tax_rate_id} does not exist", field=["taxRateId"])
            if row.active:
                row = (
                    await unit.session.execute(
                        update(TR)
                        .where(TR.c.id == tax_rate_id)
                        .values(active=False, archived_at=unit.now)
                        .returning(TR)
                    )
                ).one()
            return Result(extra={"taxRate": row})

        return await run_in_transaction(self.services, "archiveTaxRate", actor, common, request, body)


def _conflict(name: str | None, country: str, region: str | None) -> ValidationError:
    place = region or country
    held = f" ({name!r})" if name else ""
    return ValidationError(
        f"{place} has an active tax rate already{held}: archive it first",
        code="TAX_RATE_CONFLICT",
        field=["region" if region else "country"],
    )


class ShippingService:
    def __init__(self, services: Services) -> None:
        self.services = services

    async def create_shipping_profile(
        self, actor: Actor, request: Any, common: Common, *, name: str, rates: Sequence[tuple[str, Money]]
    ) -> Result:
        async def body(unit: Unit) -> Result:
            clean = rules.clean_rates(rates)
            row = (
                await unit.session.execute(
                    insert(SP)
                    .values(
                        name=rules.clean_name(name),
                        rates=rules.rates_to_rows(clean),
                        created_at=unit.now,
                        updated_at=unit.now,
                    )
                    .returning(SP)
                )
            ).one()
            return Result(extra={"shippingProfile": shipping_profile_from_row(row)})

        return await run_in_transaction(self.services, "createShippingProfile", actor, common, request, body)

    async def update_shipping_profile(
        self,
        actor: Actor,
        request: Any,
        common: Common,
        *,
        shipping_profile_id: int,
        name: str | None,
        rates: Sequence[tuple[str, Money]] | None,
    ) -> Result:
        """Rename it or list its rates anew; every subscription it ships must keep a rate in its currency."""

        async def body(unit: Unit) -> Result:
            row = (
                await unit.session.execute(select(SP).where(SP.c.id == shipping_profile_id).with_for_update())
            ).first()
            if row is None:
                raise NotFound(f"shipping profile {shipping_profile_id} does not exist", field=["shippingProfileId"])
            values: dict[str, Any] = {"updated_at": unit.now}
            if name is not None:
                values["name"] = rules.clean_name(name)
            if rates is not None:
                clean = rules.clean_rates(rates)
                currencies = sorted({r.amount.currency for r in clean})
                stranded = await _currencies_shipped(unit, shipping_profile_id, currencies)
                if stranded:
                    currency, count = stranded[0]
                    raise ValidationError(
                        f"{count} subscription(s) in {currency} ship with this profile: keep a rate in {currency}",
                        code="CURRENCY_MISMATCH",
                        field=["rates"],
                    )
                values["rates"] = rules.rates_to_rows(clean)
            updated = (
                await unit.session.execute(
                    update(SP).where(SP.c.id == shipping_profile_id).values(**values).returning(SP)
                )
            ).one()
            return Result(extra={"shippingProfile": shipping_profile_from_row(updated)})

        return await run_in_transaction(self.services, "updateShippingProfile", actor, common, request, body)

    async def archive_shipping_profile(
        self, actor: Actor, request: Any, common: Common, *, shipping_profile_id: int
    ) -> Result:
        """Archived, it is assigned to nothing new; subscriptions that ship with it go on doing so."""

        async def body(unit: Unit) -> Result:
            updated = (
                await unit.session.execute(
                    update(SP)
                    .where(SP.c.id == shipping_profile_id)
                    .values(active=False, updated_at=unit.now)
                    .returning(SP)
                )
            ).first()
            if updated is None:
                raise NotFound(f"shipping profile {shipping_profile_id} does not exist", field=["shippingProfileId"])
            return Result(extra={"shippingProfile": shipping_profile_from_row(updated)})

        return await run_in_transaction(self.services, "archiveShippingProfile", actor, common, request, body)

    async def set_shipping_profile(
        self,
        actor: Actor,
        common: Common,
        request: Any,
        subscription_id: int,
        *,
        shipping_profile_id: int | None,
        consent_reference: str | None,
    ) -> Result:
        async def build(unit: Unit, state: SubscriptionState, ctx: OpContext) -> Outcome:
            profile = (
                await unit.catalog.shipping_profile(shipping_profile_id) if shipping_profile_id is not None else None
            )
            return set_shipping_profile_rule(state, ctx, profile=profile, consent_reference=consent_reference)

        return await SubscriptionService(self.services).mutate(
            "setShippingProfile", subscription_id, actor, common, request, build, consent_reference=consent_reference
        )


async def _currencies_shipped(unit: Unit, shipping_profile_id: int, keep: Sequence[str]) -> list[tuple[str, int]]:
    """The currencies (and how many subscriptions) that ship with the profile and that ``keep`` leaves out."""
    via_profile = select(P.c.id).where(P.c.shipping_profile_id == shipping_profile_id)
    rows = await unit.session.execute(
        select(S.c.currency, func.count())
        .where(
            S.c.status.not_in(_LIVE),
            S.c.currency.not_in(list(keep)),
            or_(
                S.c.shipping_profile_id == shipping_profile_id,
                and_(S.c.shipping_profile_id.is_(None), S.c.profile_id.in_(via_profile)),
            ),
        )
        .group_by(S.c.currency)
        .order_by(S.c.currency)
    )
    return [(row[0], row[1]) for row in rows]


async def check_profile_serves(unit: Unit, profile_id: int | None, shipping: ShippingProfile | None) -> None:
    """A subscription profile given ``shipping``: refused when a subscription on it would have no rate."""
    if shipping is None:
        return
    rules.check_active(shipping)
    if profile_id is None:
        return
    stranded = (
        await unit.session.execute(
            select(S.c.currency)
            .where(
                S.c.profile_id == profile_id,
                S.c.shipping_profile_id.is_(None),
                S.c.status.not_in(_LIVE),
                S.c.currency.not_in(sorted(shipping.currencies)),
            )
            .limit(1)
        )
    ).scalar()
    if stranded is not None:
        raise ValidationError(
            f"shipping profile {shipping.name!r} has no rate in {stranded}, the currency of subscriptions on this"
            " profile",
            code="CURRENCY_MISMATCH",
            field=["shippingProfileId"],
        )


__all__ = ["ShippingService", "TaxService", "check_profile_serves", "tax_rate_from_row"]
