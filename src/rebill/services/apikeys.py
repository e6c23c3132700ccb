"""API keys: the secret is shown once; only its SHA-256 is stored.

Secrets are 256 random bits, so a fast hash is enough: there is nothing to
brute-force, and lookups stay one indexed equality.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from rebill.db import tables as t
from rebill.db.driver import Prepared
from rebill.domain.errors import ValidationError
from rebill.services.runtime import SCOPES, Actor

K = t.table_of(t.ApiKey)


_BY_SECRET = Prepared(
    select(K.c.id, K.c.name, K.c.scopes).where(K.c.secret_hash == bindparam("secret_hash"), K.c.revoked_at.is_(None))
)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


@dataclass(frozen=True)
class CreatedKey:
    id: int
    name: str
    scopes: tuple[str, ...]
    secret: str


async def create_key(engine: AsyncEngine, name: str, scopes: Iterable[str], now: datetime) -> CreatedKey:
    wanted = tuple(dict.fromkeys(s.strip().lower() for s in scopes))
    if not name.strip():
        raise ValidationError("an API key needs a name", code="INVALID_INPUT", field=["name"])
    if not wanted:
        raise ValidationError(f"give at least one scope: {', '.join(SCOPES)}", code="INVALID_SCOPE", field=["scope"])
    unknown = [s for s in wanted if s not in SCOPES]
    if unknown:
        raise ValidationError(
            f"unknown scope {unknown[0]!r}; scopes are {', '.join(SCOPES)}", code="INVALID_SCOPE", field=["scope"]
        )
    prefix = secrets.token_hex(4)
    secret = f"rbk_{prefix}_{secrets.token_urlsafe(32)}"
    async with engine.begin() as conn:
        taken = (await conn.execute(select(K.c.id).where(K.c.name == name, K.c.revoked_at.is_(None)))).scalar()
        if taken is not None:
            raise ValidationError(f"an API key named {name!r} exists already", code="DUPLICATE_NAME", field=["name"])
        await conn.execute(update(K).where(K.c.name == name).values(name=K.c.name + "#revoked-" + prefix))
        key_id = (
            await conn.execute(
                insert(K)
                .values(name=name, prefix=prefix, secret_hash=hash_secret(secret), scopes=list(wanted), created_at=now)
                .returning(K.c.id)
            )
        ).scalar_one()
    return CreatedKey(key_id, name, wanted, secret)


async def authenticate(engine: AsyncEngine, secret: str) -> Actor | None:
    """The actor for a bearer secret, or None for an unknown or revoked one."""
    if not secret or len(secret) > 200:
        return None
    # Every request asks this once: one round trip on the driver, outside any transaction.
    rows = await _BY_SECRET.fetch(engine, secret_hash=hash_secret(secret))
    if not rows:
        return None
    row = rows[0]
    return Actor(name=row.name, api_key_id=row.id, scopes=frozenset(row.scopes))


async def revoke_key(engine: AsyncEngine, name: str, now: datetime) -> bool:
    async with engine.begin() as conn:
        res = await conn.execute(update(K).where(K.c.name == name, K.c.revoked_at.is_(None)).values(revoked_at=now))
    return bool(res.rowcount)
