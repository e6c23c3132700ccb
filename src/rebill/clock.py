"""The one source of "now".

Rules never call ``datetime.now()``: services take a ``Clock``, so tests and
sandboxes can move time with ``REBILL_NOW`` and everything agrees on it.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from rebill.domain.cadence import local_today


def parse_instant(text: str) -> datetime:
    """Parse an ISO 8601 instant; a value without offset is taken as UTC."""
    value = text.strip()
    if value.endswith("Z"):
        value = value[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(f"not an ISO 8601 instant: {text!r}") from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed


class Clock:
    """Real time, or a fixed instant when one is given."""

    def __init__(self, fixed: datetime | None = None) -> None:
        if fixed is not None and fixed.tzinfo is None:
            raise ValueError("a fixed clock needs a timezone-aware instant")
        self._fixed = fixed

    @classmethod
    def from_setting(cls, now: str | None) -> Clock:
        return cls(parse_instant(now) if now else None)

    @property
    def fixed(self) -> bool:
        return self._fixed is not None

    def now(self) -> datetime:
        return self._fixed if self._fixed is not None else datetime.now(UTC)

    def today(self, tz: str = "UTC") -> date:
        return local_today(self.now(), tz)

    def set(self, instant: datetime) -> None:
        """Move a fixed clock (tests and sandboxes only)."""
        if instant.tzinfo is None:
            raise ValueError("the clock needs a timezone-aware instant")
        self._fixed = instant
