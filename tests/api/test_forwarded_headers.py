"""Which X-Forwarded-For rebill believes: none unless ``--forwarded-allow-ips`` / ``REBILL_FORWARDED_ALLOW_IPS``
names the proxy, so a client cannot rotate the header to get a fresh refusal bucket (http/refusals.py)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from tests.api.live_server import running_rebill


def test_a_client_on_this_host_rotating_x_forwarded_for_is_still_throttled(database_url):
    with (
        running_rebill(database_url, scopes=(), REBILL_REFUSAL_BUCKET="3", REBILL_REFUSAL_RESTORE="4") as live,
        httpx.Client(base_url=live.base_url, timeout=30) as http,
    ):
        statuses = [
            http.post(
                "/graphql", json={"query": "{ __typename }"}, headers={"X-Forwarded-For": f"203.0.113.{n}"}
            ).status_code
            for n in range(1, 9)
        ]
    assert statuses[:3] == [401, 401, 401], statuses
    assert 429 in statuses, statuses


class _Recorded:
    """Stands in for uvicorn's server: keeps the config ``rebill serve`` built, and serves nothing."""

    configs: list[Any] = []

    def __init__(self, config: Any) -> None:
        self.configs.append(config)

    async def serve(self) -> None:
        return None


@pytest.mark.parametrize(
    ("option", "setting", "trusted"),
    [
        (None, None, None),
        (["--forwarded-allow-ips", "10.0.0.5, 10.1.0.0/16"], None, ["10.0.0.5", "10.1.0.0/16"]),
        (None, "192.0.2.7", ["192.0.2.7"]),
        (["--forwarded-allow-ips", ""], "192.0.2.7", None),
    ],
    ids=["default-none", "option", "setting", "empty-option-overrides-setting"],
)
def test_serve_passes_the_trusted_proxies_to_uvicorn(database_url, monkeypatch, option, setting, trusted):
    from rebill import cli

    monkeypatch.setattr(cli, "_graceful_server_class", lambda: _Recorded)
    monkeypatch.setattr(_Recorded, "configs", [])
    env = {"DATABASE_URL": database_url, "REBILL_BULK_WORKER_IN_SERVER": "false"}
    if setting is not None:
        env["REBILL_FORWARDED_ALLOW_IPS"] = setting
    else:
        monkeypatch.delenv("REBILL_FORWARDED_ALLOW_IPS", raising=False)
    result = CliRunner().invoke(cli.app, ["serve", "--port", "1", *(option or [])], env=env)
    assert result.exit_code == 0, result.output
    [config] = _Recorded.configs
    if trusted is None:
        assert config.proxy_headers is False
    else:
        assert config.proxy_headers is True and config.forwarded_allow_ips == trusted


@pytest.mark.parametrize(
    ("args", "env"),
    [
        (["--forwarded-allow-ips", "proxy.internal"], {}),
        (["--forwarded-allow-ips", "10.0.0.1/8"], {}),
        ([], {"REBILL_FORWARDED_ALLOW_IPS": "10.0.0.5;10.0.0.6"}),
    ],
)
def test_a_malformed_proxy_list_is_one_line_and_exit_code_2(monkeypatch, args, env):
    from rebill import cli

    monkeypatch.setattr(cli, "_graceful_server_class", lambda: pytest.fail("serve started"))
    result = CliRunner().invoke(cli.app, ["serve", *args], env={"DATABASE_URL": "postgresql://nowhere:9/x", **env})
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "IP addresses or networks" in lines[0], result.output
