"""The typed Python client in clients/python: generated as committed, and working against a running rebill."""

from __future__ import annotations

import filecmp
import os
import shutil
import subprocess
import sys
import venv
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from tests.support import make_world, subscribe

ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "clients" / "python"
REGENERATE = "regenerate it as clients/python/README.md says"


def _generator(cache: Path) -> Path:
    """An environment with the pinned ariadne-codegen (it needs graphql-core 3.2; rebill's server needs 3.3)."""
    env = cache / "codegen-venv"
    requirements = (CLIENT / "codegen-requirements.txt").read_text()
    stamp = env / "requirements.txt"
    if not (stamp.exists() and stamp.read_text() == requirements):
        shutil.rmtree(env, ignore_errors=True)
        venv.EnvBuilder(with_pip=True).create(env)
        done = subprocess.run(
            [env / "bin" / "pip", "install", "-q", "-r", CLIENT / "codegen-requirements.txt"],
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            pytest.skip(f"could not install ariadne-codegen: {done.stderr[-300:]}")
        stamp.write_text(requirements)
    return env / "bin" / "ariadne-codegen"


@pytest.mark.slow
def test_the_committed_client_is_what_the_generator_makes_of_the_schema_and_operations(tmp_path):
    cache = Path(os.environ.get("REBILL_CODEGEN_CACHE", Path.home() / ".cache" / "rebill-codegen"))
    cache.mkdir(parents=True, exist_ok=True)
    generator = _generator(cache)
    work = tmp_path / "repo"
    (work / "clients" / "python").mkdir(parents=True)
    shutil.copy(ROOT / "schema.graphql", work / "schema.graphql")
    for name in ("pyproject.toml", "operations.graphql", "scalars.py", "codegen_plugins.py"):
        shutil.copy(CLIENT / name, work / "clients" / "python" / name)
    done = subprocess.run(
        [generator, "--config", "clients/python/pyproject.toml"],
        cwd=work,
        env={**os.environ, "PYTHONPATH": str(work / "clients" / "python")},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    generated, committed = work / "clients" / "python" / "rebill_client", CLIENT / "rebill_client"
    names = sorted(p.name for p in generated.glob("*.py"))
    assert names == sorted(p.name for p in committed.glob("*.py")), f"files added or removed: {REGENERATE}"
    _, mismatch, errors = filecmp.cmpfiles(generated, committed, names, shallow=False)
    assert mismatch == [] and errors == [], f"clients/python/rebill_client is stale ({mismatch}): {REGENERATE}"


@pytest.fixture
def rebill_client_package():
    sys.path.insert(0, str(CLIENT))
    try:
        import rebill_client

        yield rebill_client
    finally:
        sys.path.remove(str(CLIENT))


@pytest.fixture
def live_url(database_url: str):
    from tests.browser.conftest import _ServerThread

    server = _ServerThread(database_url)
    server.start()
    try:
        yield f"{server.url}/graphql"
    finally:
        server.stop()


async def test_a_partner_pages_sorts_and_runs_the_lifecycle_with_the_typed_client(
    client, admin_key, live_url, rebill_client_package
):
    rc = rebill_client_package
    world = await make_world(client)
    ids = [(await subscribe(client, world, price=p))["subscription"]["id"] for p in ["30.00", "10.50", "20.25"]]
    partner = rc.RebillClient(url=live_url, headers={"Authorization": f"Bearer {admin_key}"})

    by_amount = rc.SubscriptionOrder(field=rc.SubscriptionOrderField.AMOUNT, direction=rc.OrderDirection.DESC)
    first = await partner.list_subscriptions(first=2, order_by=by_amount)
    page = first.subscriptions
    assert page.total_count == 3 and page.page_info.has_next_page
    node = page.edges[0].node
    assert node.amount.amount == Decimal("30.00") and isinstance(node.amount.amount, Decimal)
    assert isinstance(node.next_renewal_date, date) and isinstance(node.created_at, datetime)
    assert node.status == rc.SubscriptionStatus.ACTIVE
    rest = await partner.list_subscriptions(first=2, after=page.page_info.end_cursor, order_by=by_amount)
    amounts = [e.node.amount.amount for e in page.edges + rest.subscriptions.edges]
    assert amounts == [Decimal("30.00"), Decimal("20.25"), Decimal("10.50")]
    tail = await partner.list_subscriptions(last=1)
    assert [e.node.id for e in tail.subscriptions.edges] == ids[-1:]

    sid = ids[0]
    suspended = await partner.suspend_subscription(rc.SuspendSubscriptionInput(subscription_id=sid, reason="paused"))
    assert suspended.suspend_subscription.user_errors == []
    assert suspended.suspend_subscription.subscription.status == rc.SubscriptionStatus.SUSPENDED
    activated = await partner.activate_subscription(rc.ActivateSubscriptionInput(subscription_id=sid))
    assert activated.activate_subscription.subscription.status == rc.SubscriptionStatus.ACTIVE
    moved = await partner.change_next_renewal_date(
        rc.ChangeNextRenewalDateInput(subscription_id=sid, date=date(2026, 3, 1))
    )
    assert moved.change_next_renewal_date.subscription.next_renewal_date == date(2026, 3, 1)
    renewed = await partner.renew_now(rc.RenewNowInput(subscription_id=sid))
    assert renewed.renew_now.user_errors == [], renewed.renew_now.user_errors
    renewal = renewed.renew_now.renewal
    assert renewal is not None and renewal.amount.amount == Decimal("30.00")
    refunded = await partner.refund_renewal(
        rc.RefundRenewalInput(renewal_id=renewal.id, amount=rc.MoneyInput(amount=Decimal("12.5"), currency="USD"))
    )
    assert refunded.refund_renewal.user_errors == [], refunded.refund_renewal.user_errors
    assert refunded.refund_renewal.renewal.refunded_amount.amount == Decimal("12.50")
    cancelled = await partner.cancel_subscription(rc.CancelSubscriptionInput(subscription_id=sid, at_period_end=True))
    assert cancelled.cancel_subscription.subscription.cancel_at_period_end is True
    resumed = await partner.resume_subscription(rc.ResumeSubscriptionInput(subscription_id=sid))
    assert resumed.resume_subscription.user_errors == [], resumed.resume_subscription.user_errors
    assert resumed.resume_subscription.subscription.cancel_at_period_end is False
    # A refusal is a typed userError, not an exception.
    stale = await partner.suspend_subscription(rc.SuspendSubscriptionInput(subscription_id=sid, expected_version=1))
    assert [e.code for e in stale.suspend_subscription.user_errors] == ["VERSION_CONFLICT"]
    history = await partner.subscription_history(sid, first=50)
    actions = [e.node.action for e in history.subscription.history.edges]
    assert "resume" in actions[0], "newest first: the resumption"

    endpoint = await partner.create_webhook_endpoint(
        rc.CreateWebhookEndpointInput(url="https://partner.example/hooks", events=["renewal.paid"])
    )
    assert endpoint.create_webhook_endpoint.secret.startswith("whsec_")
    listed = await partner.webhook_endpoints(first=10)
    assert [e.node.url for e in listed.webhook_endpoints.edges] == ["https://partner.example/hooks"]
