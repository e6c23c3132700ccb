"""Settings, read once from the environment.

Every knob has a default that works on a fresh machine: no ``DATABASE_URL``
means an embedded PostgreSQL under ``REBILL_DATA_DIR``.
"""

from __future__ import annotations

import ipaddress
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import platformdirs

from rebill.clock import parse_instant


def default_data_dir() -> Path:
    """The embedded database's folder when ``REBILL_DATA_DIR`` is unset: the user's data directory.

    It does not depend on where a command is typed, so a second terminal finds the server's database.
    """
    return Path(platformdirs.user_data_dir("rebill", appauthor=False))


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"{name} must be true or false, not {raw!r}")


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ValueError(f"{name} must be an integer, not {raw!r}") from None


def _positive_float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"{name} must be a number, not {raw!r}") from None
    if not value > 0 or value == float("inf"):
        raise ValueError(f"{name} must be a positive number, not {raw!r}")
    return value


def _instant(name: str) -> str | None:
    """An ISO 8601 instant, checked here so that a typo is one line naming the variable, not a traceback later."""
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return None
    try:
        parse_instant(raw)
    except ValueError:
        raise ValueError(f"{name} must be an ISO 8601 instant such as 2026-01-15T09:00:00Z, not {raw!r}") from None
    return raw


def trusted_proxies(raw: str, name: str = "REBILL_FORWARDED_ALLOW_IPS") -> tuple[str, ...]:
    """The proxies whose ``X-Forwarded-For`` names the client: comma-separated addresses or networks, or ``*``.

    Empty trusts none: the client is the connection's peer, so a client cannot pick its own address (and a
    fresh refusal bucket, http/refusals.py) by sending the header. Each entry is checked here, because uvicorn
    takes a malformed one for a name that never matches.
    """
    entries = tuple(entry.strip() for entry in raw.split(",") if entry.strip())
    if entries == ("*",):
        return entries
    for entry in entries:
        try:
            if "/" in entry:
                ipaddress.ip_network(entry)
            else:
                ipaddress.ip_address(entry)
        except ValueError:
            raise ValueError(
                f"{name} must be comma-separated IP addresses or networks (such as 10.0.0.5,10.1.0.0/16) or *,"
                f" not {entry!r}"
            ) from None
    return entries


def _prefix(name: str, default: str) -> str:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    if len(raw) > 16 or not all(c.isalnum() or c in "-_/." for c in raw):
        raise ValueError(f"{name} must be at most 16 letters, digits or - _ / . (not {raw!r})")
    return raw


SELLER_FIELDS = {"name", "address", "taxId", "email", "bankDetails", "timeZone"}


def _seller() -> dict[str, Any]:
    """``REBILL_SELLER``: JSON with ``name``, ``address`` (the Address fields), ``taxId``, ``email``,
    ``bankDetails`` and ``timeZone`` (default UTC), printed on every document."""
    raw = os.environ.get("REBILL_SELLER")
    if not raw:
        return {}
    try:
        seller = json.loads(raw)
    except ValueError as exc:
        raise ValueError(f"REBILL_SELLER must be a JSON object: {exc}") from None
    if not isinstance(seller, dict):
        raise ValueError("REBILL_SELLER must be a JSON object")
    unknown = sorted(set(seller) - SELLER_FIELDS)
    if unknown:
        raise ValueError(f"REBILL_SELLER has unknown fields {unknown}; it takes {sorted(SELLER_FIELDS)}")
    zone = seller.get("timeZone")
    if zone is not None:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(str(zone))
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"REBILL_SELLER timeZone {zone!r} is not a time zone") from None
    return seller


@dataclass(frozen=True)
class GatewayConfig:
    """A named payment gateway. ``kind`` picks the implementation."""

    name: str
    kind: str = "sandbox"
    # Sandbox only: how long the gateway takes to answer after it has charged (crash tests).
    latency_ms: int = 0


DEFAULT_GATEWAYS = (GatewayConfig("sandbox"), GatewayConfig("sandbox-b"))


def _gateways() -> tuple[GatewayConfig, ...]:
    """``REBILL_GATEWAYS`` is a JSON list of ``{"name": …, "kind": "sandbox"}``."""
    raw = os.environ.get("REBILL_GATEWAYS")
    if not raw:
        return DEFAULT_GATEWAYS
    try:
        entries = json.loads(raw)
        gateways = tuple(
            GatewayConfig(
                name=str(e["name"]), kind=str(e.get("kind", "sandbox")), latency_ms=int(e.get("latencyMs", 0))
            )
            for e in entries
        )
    except (ValueError, TypeError, KeyError) as exc:
        raise ValueError(f"REBILL_GATEWAYS must be a JSON list of {{name, kind}}: {exc}") from None
    if not gateways:
        raise ValueError("REBILL_GATEWAYS must name at least one gateway")
    return gateways


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    data_dir: Path = field(default_factory=default_data_dir)
    now: str | None = None
    introspection: bool = True
    graphiql: bool = True
    max_query_depth: int = 12
    max_aliases: int = 30
    max_tokens: int = 5000
    max_selections: int = 2000
    max_body_bytes: int = 1_048_576
    # Each API key's leaky bucket of query-cost points: its size, and the points restored per second.
    rate_limit_bucket: int = 2000
    rate_limit_restore: float = 100.0
    # Each client's bucket of refused requests (0 turns the throttle off), and the refusals restored per second.
    refusal_bucket: int = 30
    refusal_restore: float = 1.0
    # The reverse proxies whose X-Forwarded-For names the client (none: the client is the connection's peer).
    forwarded_allow_ips: tuple[str, ...] = ()
    gateways: tuple[GatewayConfig, ...] = DEFAULT_GATEWAYS
    default_gateway: str = "sandbox"
    public_base_url: str = "http://127.0.0.1:8000"
    bulk_chunk_size: int = 2000
    bulk_worker_in_server: bool = True
    worker_poll_seconds: float = 5.0
    worker_batch_size: int = 1000
    # Webhooks to loopback and private addresses: for local development and tests, never production.
    webhook_allow_private: bool = False
    smtp_host: str | None = None
    smtp_port: int = 25
    mail_from: str = "billing@rebill.local"
    deliverer: str = "log"
    portal_link_ttl: int = 3600
    portal_email_link_ttl: int = 604800
    merchant_email: str | None = None
    # Invoicing (DOMAIN.md "Invoices"): the number prefixes of each series, the days an invoice is
    # due after its issue, and the seller printed on every document (its time zone dates them).
    invoice_prefix: str = "INV-"
    credit_note_prefix: str = "CN-"
    pro_forma_prefix: str = "PF-"
    payment_terms_days: int = 0
    seller: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, str] = field(default_factory=dict)

    @property
    def seller_time_zone(self) -> str:
        return str(self.seller.get("timeZone") or "UTC")

    @classmethod
    def from_env(cls) -> Settings:
        gateways = _gateways()
        default_gateway = os.environ.get("REBILL_DEFAULT_GATEWAY") or gateways[0].name
        if default_gateway not in {g.name for g in gateways}:
            raise ValueError(f"REBILL_DEFAULT_GATEWAY {default_gateway!r} is not a configured gateway")
        return cls(
            database_url=os.environ.get("DATABASE_URL") or None,
            data_dir=Path(os.environ["REBILL_DATA_DIR"]) if os.environ.get("REBILL_DATA_DIR") else default_data_dir(),
            now=_instant("REBILL_NOW"),
            introspection=_bool("REBILL_INTROSPECTION", True),
            graphiql=_bool("REBILL_GRAPHIQL", True),
            max_query_depth=_int("REBILL_MAX_QUERY_DEPTH", 12),
            max_aliases=_int("REBILL_MAX_ALIASES", 30),
            max_tokens=_int("REBILL_MAX_TOKENS", 5000),
            max_selections=_int("REBILL_MAX_SELECTIONS", 2000),
            max_body_bytes=_int("REBILL_MAX_BODY_BYTES", 1_048_576),
            rate_limit_bucket=_int("REBILL_RATE_LIMIT_BUCKET", 2000),
            rate_limit_restore=_positive_float("REBILL_RATE_LIMIT_RESTORE", 100.0),
            refusal_bucket=_int("REBILL_REFUSAL_BUCKET", 30),
            refusal_restore=_positive_float("REBILL_REFUSAL_RESTORE", 1.0),
            forwarded_allow_ips=trusted_proxies(os.environ.get("REBILL_FORWARDED_ALLOW_IPS", "")),
            gateways=gateways,
            default_gateway=default_gateway,
            public_base_url=(os.environ.get("REBILL_PUBLIC_BASE_URL") or "http://127.0.0.1:8000").rstrip("/"),
            bulk_chunk_size=_int("REBILL_BULK_CHUNK_SIZE", 2000),
            bulk_worker_in_server=_bool("REBILL_BULK_WORKER_IN_SERVER", True),
            worker_poll_seconds=float(os.environ.get("REBILL_WORKER_POLL_SECONDS") or 5.0),
            worker_batch_size=_int("REBILL_WORKER_BATCH_SIZE", 1000),
            webhook_allow_private=_bool("REBILL_WEBHOOK_ALLOW_PRIVATE", False),
            smtp_host=os.environ.get("REBILL_SMTP_HOST") or None,
            smtp_port=_int("REBILL_SMTP_PORT", 25),
            mail_from=os.environ.get("REBILL_MAIL_FROM") or "billing@rebill.local",
            deliverer=os.environ.get("REBILL_DELIVERER") or ("smtp" if os.environ.get("REBILL_SMTP_HOST") else "log"),
            portal_link_ttl=_int("REBILL_PORTAL_LINK_TTL", 3600),
            portal_email_link_ttl=_int("REBILL_PORTAL_EMAIL_LINK_TTL", 604800),
            merchant_email=os.environ.get("REBILL_MERCHANT_EMAIL") or None,
            invoice_prefix=_prefix("REBILL_INVOICE_PREFIX", "INV-"),
            credit_note_prefix=_prefix("REBILL_CREDIT_NOTE_PREFIX", "CN-"),
            pro_forma_prefix=_prefix("REBILL_PRO_FORMA_PREFIX", "PF-"),
            payment_terms_days=_int("REBILL_PAYMENT_TERMS_DAYS", 0),
            seller=_seller(),
        )
