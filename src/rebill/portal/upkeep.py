"""What the server does for the portal when it starts: store the link settings, forget dead secrets."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, or_

from rebill.db import tables as t
from rebill.portal.sessions import IDLE
from rebill.portal.tokens import write_settings
from rebill.services.runtime import Services

T = t.table_of(t.PortalToken)
PS = t.table_of(t.PortalSession)

#: How long a dead link is remembered, so that its page says "expired" rather than "not valid".
GRACE = timedelta(days=30)


async def forget_expired(services: Services) -> tuple[int, int]:
    """Delete links and tokens expired for a while, and sessions long over; (tokens, sessions) deleted."""
    now = services.clock.now()
    async with services.engine.begin() as conn:
        tokens = await conn.execute(delete(T).where(T.c.expires_at < now - GRACE))
        sessions = await conn.execute(
            delete(PS).where(or_(PS.c.ended_at < now - GRACE, PS.c.last_seen_at < now - IDLE - GRACE))
        )
    return tokens.rowcount, sessions.rowcount


async def start(services: Services) -> None:
    await write_settings(services)
    await forget_expired(services)
