"""Portal browser sessions: an HttpOnly cookie, a 30-minute idle timeout, a CSRF token per session.

The cookie holds a random secret; the table keeps its SHA-256, the customer,
the session's CSRF token and when it was last used. A session that has not
been used for ``IDLE`` is over; each use moves ``last_seen_at``. Times come
from rebill's clock, so ``REBILL_NOW`` moves them in tests like everything
else.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import insert, update
from starlette.requests import Request
from starlette.responses import Response

from rebill.db import tables as t
from rebill.portal.tokens import hash_secret, new_secret
from rebill.services.runtime import Services

PS = t.table_of(t.PortalSession)

COOKIE = "rebill_portal"
IDLE = timedelta(minutes=30)


@dataclass(frozen=True)
class Session:
    id: int
    customer_id: int
    csrf_token: str
    return_url: str | None


async def open_session(services: Services, customer_id: int, return_url: str | None) -> str:
    """A new session for the customer; returns the cookie's secret."""
    secret = new_secret()
    now = services.clock.now()
    async with services.engine.begin() as conn:
        await conn.execute(
            insert(PS).values(
                customer_id=customer_id,
                session_hash=hash_secret(secret),
                csrf_token=secrets.token_urlsafe(32),
                return_url=return_url,
                created_at=now,
                last_seen_at=now,
            )
        )
    return secret


async def current_session(services: Services, request: Request) -> Session | None:
    """The request's live session (and it is used now), or None: no cookie, unknown, ended, or idle too long."""
    secret = request.cookies.get(COOKIE, "")
    if not secret or len(secret) > 128:
        return None
    now = services.clock.now()
    async with services.engine.begin() as conn:
        row = (
            await conn.execute(
                update(PS)
                .where(
                    PS.c.session_hash == hash_secret(secret),
                    PS.c.ended_at.is_(None),
                    PS.c.last_seen_at > now - IDLE,
                )
                .values(last_seen_at=now)
                .returning(PS.c.id, PS.c.customer_id, PS.c.csrf_token, PS.c.return_url)
            )
        ).first()
    if row is None:
        return None
    return Session(row.id, row.customer_id, row.csrf_token, row.return_url)


async def end_session(services: Services, session: Session) -> None:
    async with services.engine.begin() as conn:
        await conn.execute(update(PS).where(PS.c.id == session.id).values(ended_at=services.clock.now()))


def is_https(services: Services, request: Request) -> bool:
    return request.url.scheme == "https" or services.settings.public_base_url.startswith("https://")


def set_cookie(services: Services, request: Request, response: Response, secret: str) -> None:
    """HttpOnly, SameSite=Lax, Secure when served over HTTPS; no expiry: the server ends it when idle."""
    response.set_cookie(COOKIE, secret, path="/", httponly=True, samesite="lax", secure=is_https(services, request))


def clear_cookie(services: Services, request: Request, response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="lax", secure=is_https(services, request))


def csrf_ok(session: Session, submitted: object) -> bool:
    return isinstance(submitted, str) and secrets.compare_digest(submitted.encode(), session.csrf_token.encode())
