import httpx

from rebill.bulk.runner import process_queued_runs
from rebill.services.apikeys import create_key
from tests.support import gql, gql_raw, history, make_world, mutate, ok, subscribe

PREVIEW = """
query($plan: BulkPlanInput!, $sample: Int) {
  bulkPreview(plan: $plan, sample: $sample) {
    previewedAt matched unsegmented alreadyApplied
    billedBefore { amount currency } billedAfter { amount currency }
    segments {
      name matched
      billedBefore { amount currency } billedAfter { amount currency }
      refused { count reasons { code count message exampleSubscriptionId } }
      sample { subscriptionId refused code changes { field before after } }
    }
  }
}
"""

RUN_FIELDS = """
  id status dryRun limit total processed applied skipped failed conflicts createdBy createdAt finishedAt
  items(first: 10) { totalCount edges { node { subscriptionId segment outcome code reason changes { field after } } } }
"""


def plan(world, *, percent: str = "-10") -> dict:
    return {
        "filter": {"status": ["ACTIVE", "TRIAL"]},
        "segments": [
            {
                "name": "trials",
                "when": {"inTrial": True},
                "actions": [{"shiftNextRenewal": {"unit": "DAY", "count": 14}}],
            },
            {
                "name": "forced-gateway",
                "when": {"gatewayMode": ["FORCED"]},
                "actions": [{"setGateway": {"gatewayId": "sandbox-b", "mode": "PREFERRED"}}],
            },
            {"name": "everyone-else", "actions": [{"adjustPrice": {"percent": percent}}]},
        ],
    }


async def shop(client):
    world = await make_world(client)
    trial = (await subscribe(client, world, "20.00", trialDays=14))["subscription"]["id"]
    forced = (await subscribe(client, world, "30.00"))["subscription"]["id"]
    ok(
        await mutate(
            client,
            "setGateway",
            {"subscriptionId": forced, "gatewayId": "sandbox", "mode": "FORCED"},
            "subscription { id }",
        )
    )
    plain = (await subscribe(client, world, "10.00"))["subscription"]["id"]
    return world, {"trial": trial, "forced": forced, "plain": plain}


async def test_an_operator_previews_runs_follows_and_reverts_a_plan_over_graphql(client, services):
    world, ids = await shop(client)
    preview = (await gql(client, PREVIEW, {"plan": plan(world), "sample": 5}))["bulkPreview"]
    assert (preview["matched"], preview["unsegmented"]) == (3, 0)
    assert [(s["name"], s["matched"]) for s in preview["segments"]] == [
        ("trials", 1),
        ("forced-gateway", 1),
        ("everyone-else", 1),
    ]
    rest = preview["segments"][2]
    assert rest["billedBefore"] == [{"amount": "10.00", "currency": "USD"}]
    assert rest["billedAfter"] == [{"amount": "9.00", "currency": "USD"}]
    assert rest["sample"][0]["subscriptionId"] == ids["plain"]

    trial_first = ok(
        await mutate(
            client,
            "startBulkRun",
            {"plan": plan(world), "limit": 1, "asOf": preview["previewedAt"]},
            f"run {{ {RUN_FIELDS} }}",
        )
    )["run"]
    assert (trial_first["status"], trial_first["limit"], trial_first["createdBy"]) == ("QUEUED", 1, "support-agent")
    await process_queued_runs(services)
    first = (
        await gql(client, f"query($id: ID!) {{ bulkRun(id: $id) {{ {RUN_FIELDS} }} }}", {"id": trial_first["id"]})
    )["bulkRun"]
    assert (first["status"], first["applied"], first["processed"], first["total"]) == ("COMPLETED", 1, 1, 1)
    assert first["items"]["edges"][0]["node"]["subscriptionId"] == ids["trial"]

    full = ok(await mutate(client, "startBulkRun", {"plan": plan(world)}, "run { id }"))["run"]
    await process_queued_runs(services)
    node = (
        await gql(
            client, f"query($id: ID!) {{ node(id: $id) {{ ... on BulkRun {{ {RUN_FIELDS} }} }} }}", {"id": full["id"]}
        )
    )["node"]
    assert (node["status"], node["applied"], node["items"]["totalCount"]) == ("COMPLETED", 2, 2)
    assert {e["node"]["segment"] for e in node["items"]["edges"]} == {"forced-gateway", "everyone-else"}

    entries = await history(client, ids["plain"])
    assert entries[-1]["actor"] == "bulk-run:2"
    assert entries[-1]["bulkRunId"] == full["id"]

    reverted = ok(
        await mutate(
            client, "revertBulkRun", {"runId": full["id"]}, "run { status } reverted notReverted { subscriptionId }"
        )
    )
    assert (reverted["run"]["status"], reverted["reverted"], reverted["notReverted"]) == ("REVERTED", 2, [])
    entries = await history(client, ids["plain"])
    assert entries[-1]["action"] == "bulk_revert"


async def test_cancelling_a_queued_run_means_it_never_starts(client, services):
    world, _ = await shop(client)
    run = ok(await mutate(client, "startBulkRun", {"plan": plan(world), "dryRun": True}, "run { id dryRun }"))["run"]
    assert run["dryRun"] is True
    cancelled = ok(await mutate(client, "cancelBulkRun", {"runId": run["id"]}, "run { status }"))
    assert cancelled["run"]["status"] == "CANCELLED"
    again = await mutate(client, "cancelBulkRun", {"runId": run["id"]}, "run { status }")
    assert [e["code"] for e in again["userErrors"]] == ["INVALID_STATUS"]


async def test_a_malformed_plan_gives_all_its_errors_at_once(client):
    await shop(client)
    bad = {
        "segments": [
            {"name": "all", "actions": [{"adjustPrice": {}}, {"applyCoupon": {"code": "NOPE"}}]},
            {"name": "never", "when": {"inTrial": True}, "actions": [{"suspend": True}]},
        ],
        "limit": -1,
    }
    payload = await mutate(client, "startBulkRun", {"plan": bad}, "run { id }")
    assert payload["run"] is None
    assert sorted((tuple(e["field"]), e["code"]) for e in payload["userErrors"]) == [
        (("plan", "limit"), "INVALID_LIMIT"),
        (("plan", "segments", "0", "actions", "0", "adjustPrice"), "MISSING_PARAMETERS"),
        (("plan", "segments", "1"), "UNREACHABLE_SEGMENT"),
    ]

    response = await gql_raw(client, PREVIEW, {"plan": bad})
    error = response.json()["errors"][0]
    assert error["extensions"]["code"] == "INVALID_PLAN"
    assert len(error["extensions"]["errors"]) == 3
    assert "segments[1]" in error["message"]

    unknown = await gql_raw(
        client, PREVIEW, {"plan": {"segments": [{"name": "x", "actions": [{"applyCoupon": {"code": "NOPE"}}]}]}}
    )
    assert unknown.json()["errors"][0]["extensions"]["errors"][0]["code"] == "UNKNOWN_COUPON"


async def test_an_action_is_exactly_one_of_its_fields(client):
    response = await gql_raw(
        client,
        PREVIEW,
        {"plan": {"segments": [{"name": "x", "actions": [{"suspend": True, "activate": True}]}]}},
    )
    assert response.json()["errors"], response.json()


async def test_only_the_bulk_scope_may_preview_or_run_plans(client, services):
    world, _ = await shop(client)
    secret = (await create_key(services.engine, "writer", ["read", "write"], services.clock.now())).secret
    async with httpx.AsyncClient(
        transport=client._transport, base_url="http://rebill.test", headers={"Authorization": f"Bearer {secret}"}
    ) as writer:
        response = await gql_raw(writer, PREVIEW, {"plan": plan(world)})
        assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
        response = await gql_raw(
            writer,
            "mutation($input: StartBulkRunInput!) { startBulkRun(input: $input) { run { id } } }",
            {"input": {"plan": plan(world)}},
        )
        assert response.json()["errors"][0]["extensions"]["code"] == "FORBIDDEN"
    bulk = (await create_key(services.engine, "bulk-editor", ["bulk"], services.clock.now())).secret
    async with httpx.AsyncClient(
        transport=client._transport, base_url="http://rebill.test", headers={"Authorization": f"Bearer {bulk}"}
    ) as editor:
        started = await mutate(editor, "startBulkRun", {"plan": plan(world)}, "run { createdBy }")
        assert started["run"]["createdBy"] == "bulk-editor"
