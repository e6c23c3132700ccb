"""bulkRuns: the list of past and current runs, newest first, each key seeing its own."""

from __future__ import annotations

import httpx

from rebill.services.apikeys import create_key
from tests.support import gql, make_world, mutate, ok, subscribe

PLAN = {
    "filter": {"status": ["ACTIVE"]},
    "segments": [{"name": "all", "actions": [{"shiftNextRenewal": {"unit": "DAY", "count": 7}}]}],
}
LIST = "{ bulkRuns(first: 10) { totalCount edges { node { id status dryRun } } pageInfo { hasNextPage } } }"


async def start(client: httpx.AsyncClient, dry_run: bool) -> str:
    payload = ok(
        await mutate(client, "startBulkRun", {"plan": PLAN, "dryRun": dry_run, "limit": 1}, "run { id status }")
    )
    return str(payload["run"]["id"])


async def test_bulk_runs_are_listed_newest_first_and_a_key_sees_only_its_own(client, services):
    world = await make_world(client)
    await subscribe(client, world)
    first = await start(client, dry_run=True)
    second = await start(client, dry_run=False)
    data = await gql(client, LIST)
    assert [e["node"]["id"] for e in data["bulkRuns"]["edges"]] == [second, first]
    assert data["bulkRuns"]["totalCount"] == 2

    other = (await create_key(services.engine, "another-operator", ["bulk"], services.clock.now())).secret
    from rebill.app import create_app

    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(
        transport=transport, base_url="http://rebill.test", headers={"Authorization": f"Bearer {other}"}
    ) as theirs:
        mine = await gql(theirs, LIST)
    assert mine["bulkRuns"]["totalCount"] == 0, "another bulk key does not see the admin's runs"
