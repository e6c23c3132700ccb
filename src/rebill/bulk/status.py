"""A bulk run as every caller reads it: what its statuses mean, and its row as a view.

The service (:mod:`rebill.bulk.runs`) and the runner (:mod:`rebill.bulk.runner`)
both read runs through this module; neither needs the other for it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from rebill.db import tables as t

RUNS = t.table_of(t.BulkRun)

#: Statuses of a run that a worker is still to work on (or is working on).
ACTIVE = ("QUEUED", "RUNNING")
#: Statuses of a run that is over.
FINISHED = ("COMPLETED", "FAILED", "CANCELLED", "REVERTED")


async def load_run(session: AsyncSession, run_id: int) -> Any:
    return (await session.execute(select(RUNS).where(RUNS.c.id == run_id))).first()


@dataclass(frozen=True)
class RunView:
    id: int
    status: str
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
    as_of: datetime
    started_at: datetime | None
    finished_at: datetime | None
    reverted_at: datetime | None
    cancel_requested: bool
    error: str | None
    plan: dict[str, Any]
    plan_hash: str

    @classmethod
    def of(cls, row: Any) -> RunView:
        return cls(
            id=row.id,
            status=row.status,
            dry_run=row.dry_run,
            limit=row.limit,
            total=row.total,
            processed=row.processed,
            applied=row.applied,
            skipped=row.skipped,
            failed=row.failed,
            conflicts=row.conflicts,
            created_by=row.created_by,
            created_at=row.created_at,
            as_of=row.as_of,
            started_at=row.started_at,
            finished_at=row.finished_at,
            reverted_at=row.reverted_at,
            cancel_requested=row.cancel_requested,
            error=row.error,
            plan=row.plan,
            plan_hash=row.plan_hash,
        )

    @property
    def finished(self) -> bool:
        return self.status in FINISHED
