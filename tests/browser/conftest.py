"""A real browser against a real rebill server.

``live_server`` runs rebill's application under uvicorn on a free port of
127.0.0.1, in a thread with its own event loop and engine, over the test
database of ``tests/conftest.py`` (the tables are emptied before each test,
as for every other test). ``page`` is a Playwright page in Debian's
``chromium``; every request to a host other than 127.0.0.1 is refused, so a
test passes only if the page needs nothing from the internet. ``screenshot``
saves numbered screenshots under the test's ``tmp_path``.

Mark browser tests with ``pytestmark = pytest.mark.browser``. Without
``chromium`` on the PATH they are skipped, unless ``REBILL_REQUIRE_BROWSER``
is set, as ``.ci/run`` does after installing it: there they fail.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from rebill.clock import Clock
from rebill.config import Settings
from tests.conftest import DEFAULT_NOW

ALLOWED_HOSTS = {"127.0.0.1"}


class _ServerThread:
    """uvicorn serving ``create_app`` in a thread; the bulk-run worker runs beside it, as in ``rebill serve``."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port: int = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server: Any = None
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="rebill-live-server", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by start()
            self.error = exc

    async def _serve(self) -> None:
        import uvicorn

        from rebill.app import create_app
        from rebill.bulk.runner import background_runner
        from rebill.db.engine import make_engine
        from rebill.services.runtime import Services

        settings = Settings(
            database_url=self.database_url,
            bulk_chunk_size=50,
            bulk_worker_in_server=True,
            rate_limit_bucket=1_000_000_000,
            rate_limit_restore=1_000_000_000,
        )
        engine = make_engine(self.database_url, pool_size=5, max_overflow=10)
        services = Services(engine, settings, Clock(DEFAULT_NOW))
        app = create_app(services, background=[background_runner])
        config = uvicorn.Config(app, log_level="warning", lifespan="on")
        self.server = uvicorn.Server(config)
        try:
            await self.server.serve(sockets=[self.sock])
        finally:
            await services.close()
            await engine.dispose()

    def start(self) -> None:
        self.thread.start()
        for _ in range(200):
            if self.error is not None:
                raise RuntimeError(f"the live server did not start: {self.error!r}")
            if self.server is not None and self.server.started:
                return
            self.thread.join(0.05)
        raise RuntimeError("the live server did not start within 10 s")

    def stop(self) -> None:
        if self.server is not None:
            self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()


@pytest.fixture(scope="package")
def _server_thread(database_url: str) -> Iterator[_ServerThread]:
    # Package scope: the server (and its bulk-run worker, which picks up any queued run in the test
    # database) stops once the browser tests are done, before other packages' tests run.
    server = _ServerThread(database_url)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@dataclass
class LiveServer:
    """A running rebill: its base ``url``, and ``services`` on the same database for setting up data."""

    url: str
    services: Any

    async def create_api_key(self, name: str = "browser-user", scopes: tuple[str, ...] = ("admin",)) -> str:
        """Create an API key; returns its secret."""
        from rebill.services.apikeys import create_key

        key = await create_key(self.services.engine, name, list(scopes), self.services.clock.now())
        secret: str = key.secret
        return secret

    async def create_admin_key(self, name: str = "browser-user") -> str:
        return await self.create_api_key(name, ("admin",))


@pytest.fixture
def live_server(_server_thread: _ServerThread, services: Any) -> LiveServer:
    return LiveServer(url=_server_thread.url, services=services)


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Any]:
    executable = shutil.which("chromium")
    if executable is None:
        reason = "browser tests need Debian's chromium on the PATH: apt-get install -y chromium"
        if os.environ.get("REBILL_REQUIRE_BROWSER"):  # CI (.ci/run) installs it: never skip there
            pytest.fail(reason)
        pytest.skip(reason)
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        instance = await playwright.chromium.launch(executable_path=executable, args=["--no-sandbox"])
        try:
            yield instance
        finally:
            await instance.close()


@dataclass
class PageReport:
    """What the page did that a person would notice: requests refused, scripts that failed."""

    refused: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)


@pytest.fixture
async def page_report() -> PageReport:
    return PageReport()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    if report.when == "call":
        item.stash[_FAILED] = report.failed
    return report


_FAILED = pytest.StashKey[bool]()


@pytest.fixture
async def page(
    browser: Any, page_report: PageReport, request: pytest.FixtureRequest, tmp_path: Path
) -> AsyncIterator[Any]:
    """A fresh browser context and page; only 127.0.0.1 is reachable, and script errors fail the test.

    When the test fails, the page's last state is kept as ``tmp_path/failure.png`` and its text is printed.
    """
    context = await browser.new_context(viewport={"width": 1400, "height": 900}, locale="en-US")

    async def only_loopback(route: Any) -> None:
        url = route.request.url
        scheme = urlsplit(url).scheme
        if scheme in {"data", "blob", "about"} or urlsplit(url).hostname in ALLOWED_HOSTS:
            await route.continue_()
        else:
            page_report.refused.append(url)
            await route.abort("blockedbyclient")

    await context.route("**/*", only_loopback)
    tab = await context.new_page()
    # Generous: the machine running the suite may be busy; a passing test never waits for these.
    tab.set_default_timeout(20_000)
    tab.set_default_navigation_timeout(30_000)
    tab.on("pageerror", lambda exc: page_report.errors.append(str(exc)))
    try:
        yield tab
        if request.node.stash.get(_FAILED, False):
            await tab.screenshot(path=str(tmp_path / "failure.png"), full_page=True)
            print(f"--- the page at {tab.url} when the test failed ({tmp_path / 'failure.png'}):")
            print(await tab.inner_text("body"))
    finally:
        await context.close()
    assert not page_report.refused, f"the page asked for other hosts: {page_report.refused}"
    assert not page_report.errors, f"scripts failed in the page: {page_report.errors}"


@pytest.fixture
def screenshot(page: Any, tmp_path: Path) -> Callable[[str], Awaitable[Path]]:
    """``await screenshot("name")`` saves ``tmp_path/NN-name.png`` and returns its path."""
    count = 0

    async def take(name: str, *, full_page: bool = False) -> Path:
        nonlocal count
        count += 1
        path = tmp_path / f"{count:02d}-{name}.png"
        await page.screenshot(path=str(path), full_page=full_page)
        return path

    return take
