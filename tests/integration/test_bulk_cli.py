import asyncio
import json
import os
import sys

import pytest

from tests.conftest import DEFAULT_NOW
from tests.integration.test_bulk_preview import THREE_SEGMENTS, three_segment_shop


async def rebill(database_url: str, *args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """Run the ``rebill`` command line against the test database; its exit code and output."""
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REBILL_NOW": DEFAULT_NOW.isoformat(),
        "COLUMNS": "200",
        **(env or {}),
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        "from rebill.cli import main; main()",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate()
    return proc.returncode or 0, out.decode()


async def test_an_operator_goes_from_plan_file_to_preview_trial_run_full_run_and_revert(
    services, database_url, tmp_path
):
    shop, ids = await three_segment_shop(services)
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps(THREE_SEGMENTS))

    code, out = await rebill(database_url, "bulk", "preview", str(plan))
    assert code == 0, out
    assert "everyone-else" in out and "31.75 USD" in out and "28.57 USD" in out

    code, out = await rebill(database_url, "bulk", "run", str(plan), "--limit", "1")
    assert code == 0, out
    assert "bulk run 1: COMPLETED" in out and "1 applied" in out

    code, out = await rebill(database_url, "bulk", "run", str(plan))
    assert code == 0, out
    assert "bulk run 2: COMPLETED" in out and "5 applied" in out
    assert (await shop.state(ids["plain"])).amount.amount_str == "9.00"

    code, out = await rebill(database_url, "bulk", "status", "2")
    assert code == 0 and "5/5 processed" in out, out

    code, out = await rebill(database_url, "bulk", "revert", "2")
    assert code == 0, out
    assert "reverted 5 subscriptions" in out
    assert (await shop.state(ids["plain"])).amount.amount_str == "10.00"
    history = await shop.history(ids["plain"])
    assert [h.actor for h in history[-2:]] == [
        "bulk-run:2",
        f"cli:{os.environ.get('USER') or __import__('getpass').getuser()}",
    ]


async def test_the_cli_prints_every_problem_of_a_malformed_plan_and_exits_2(services, database_url, tmp_path):
    await three_segment_shop(services)
    plan = tmp_path / "plan.json"
    plan.write_text(
        json.dumps(
            {"segments": [{"name": "x", "actions": [{"adjustPrice": {"percent": "ten"}}, {"launch": {}}]}], "limit": 0}
        )
    )
    code, out = await rebill(database_url, "bulk", "run", str(plan))
    assert code == 2, out
    assert "3 problems" in out
    assert "segments[0].actions[0].adjustPrice.percent" in out and "UNKNOWN_ACTION" in out and "INVALID_LIMIT" in out
    code, out = await rebill(database_url, "bulk", "status", "1")
    assert code == 1 and "does not exist" in out


async def test_a_plan_file_with_more_than_1000_ids_is_refused_before_the_database(services, database_url, tmp_path):
    shop, ids = await three_segment_shop(services)
    before = await shop.states(list(ids.values()))
    too_many = [*ids.values(), *range(100_000, 100_000 + 1001 - len(ids))]
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({**THREE_SEGMENTS, "filter": {"ids": too_many}}))
    refusal = "error: filter.ids: at most 1000 items per list (got 1001)"

    for command in ("preview", "run"):
        code, out = await rebill(database_url, "bulk", command, str(plan))
        assert code == 2, out
        assert out.strip() == refusal

    # Refused before any database: an unreachable one is never asked.
    code, out = await rebill("postgresql://rebill@127.0.0.1:9/nowhere", "bulk", "run", str(plan))
    assert (code, out.strip()) == (2, refusal)

    nested = {**THREE_SEGMENTS, "segments": [{"when": {"ids": too_many}, "actions": [{"suspend": {}}]}]}
    plan.write_text(json.dumps(nested))
    code, out = await rebill(database_url, "bulk", "run", str(plan))
    assert (code, out.strip()) == (2, "error: segments[0].when.ids: at most 1000 items per list (got 1001)")

    code, out = await rebill(database_url, "bulk", "status", "1")
    assert code == 1 and "does not exist" in out
    assert await shop.states(list(ids.values())) == before


async def test_a_plan_file_with_1000_ids_still_runs(services, database_url, tmp_path):
    shop, ids = await three_segment_shop(services)
    before = await shop.states(list(ids.values()))
    thousand = [*ids.values(), *range(100_000, 100_000 + 1000 - len(ids))]
    plan = tmp_path / "plan.json"
    plan.write_text(json.dumps({**THREE_SEGMENTS, "filter": {"ids": thousand}}))

    code, out = await rebill(database_url, "bulk", "run", str(plan), "--dry-run")
    assert code == 0, out
    assert "bulk run 1: COMPLETED (dry run)" in out and "7/7 processed" in out
    assert await shop.states(list(ids.values())) == before


DEEP = 100_000
BAD_INPUT = [
    pytest.param(["bulk", "status", "99999999999999999999999"], {}, "", "is not a bulk run id", id="id-beyond-64-bits"),
    pytest.param(["bulk", "status", "9" * 5000], {}, "", "is not a bulk run id", id="id-of-5000-digits"),
    pytest.param(["bulk", "status", "0"], {}, "", "is not a bulk run id", id="id-zero"),
    pytest.param(["bulk", "status", "²"], {}, "", "is not a bulk run id", id="id-of-a-superscript-digit"),
    pytest.param(["bulk", "cancel", "not-an-id"], {}, "", "is not a bulk run id", id="id-of-nothing"),
    pytest.param(["bulk", "status", "1"], {"REBILL_NOW": "yesterday"}, "", "REBILL_NOW", id="rebill-now-yesterday"),
    pytest.param(
        ["bulk", "preview", "{plan}"], {"REBILL_NOW": "2026-13-45"}, "{}", "REBILL_NOW", id="rebill-now-month-13"
    ),
    pytest.param(["bulk", "status", "1"], {"REBILL_MAX_TOKENS": "many"}, "", "REBILL_MAX_TOKENS", id="setting-not-int"),
    pytest.param(
        ["bulk", "preview", "{plan}"],
        {},
        '{"segments": ' + "[" * DEEP + "]" * DEEP + "}",
        "nest more than 64 deep",
        id="plan-100000-deep",
    ),
    pytest.param(
        ["bulk", "run", "{plan}"],
        {},
        '{"segments": [{"name": "x", "when": ' + "[" * 900 + "]" * 900 + "}]}",
        "nest more than 64 deep",
        id="plan-900-deep",
    ),
    pytest.param(["bulk", "preview", "{plan}"], {}, '{"segments": [', "is not JSON", id="plan-not-json"),
    pytest.param(["bulk", "preview", "{missing}"], {}, "", "cannot read", id="plan-missing"),
    pytest.param(
        ["bulk", "run", "{plan}", "--as-of", "yesterday"], {}, "{}", "not an ISO 8601 instant", id="as-of-yesterday"
    ),
]


@pytest.mark.parametrize(("args", "env", "plan", "named"), BAD_INPUT)
async def test_bad_input_is_one_line_naming_it_and_exit_code_2(database_url, tmp_path, args, env, plan, named):
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(plan)
    args = [a.format(plan=plan_file, missing=tmp_path / "missing.json") for a in args]
    code, out = await rebill(database_url, *args, env=env)
    assert "Traceback" not in out, out[-3000:]
    assert code == 2, out[-3000:]
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and named in lines[0], out[-3000:]
