"""rebill's own pages: what they link to, and that nothing they load comes from another host."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from importlib import metadata
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx

BASE = "http://rebill.test"
PAGES = ["/", "/admin", "/graphql"]
CSS_URL = re.compile(r"""url\(\s*['"]?([^'")\s]+)|@import\s+['"]([^'"]+)""")
JS_IMPORT = re.compile(r"""(?:import|export)\s[^'"]*?from\s*['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]""")
ANY_URL = re.compile(r"""https?://[^\s'"`)]+""")


class References(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []  # what the browser fetches by itself
        self.links: list[str] = []  # where a person may go

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value for name, value in attrs if value is not None}
        if tag == "a" and "href" in values:
            self.links.append(values["href"])
        elif tag == "form" and "action" in values:
            self.links.append(values["action"])
        else:
            self.loads += [values[name] for name in ("src", "href", "srcset", "poster", "data") if name in values]


def same_host(url: str, page: str) -> bool:
    absolute = urlsplit(urljoin(BASE + page, url))
    return absolute.scheme in {"data", "blob", "about", "javascript"} or absolute.netloc == urlsplit(BASE).netloc


async def crawl(client: httpx.AsyncClient) -> dict[str, list[str]]:
    """Every page reachable from /, and every file they load (CSS and ES imports followed)."""
    html_pages: dict[str, list[str]] = {}
    assets: set[str] = set()
    queue = list(PAGES)
    while queue:
        path = queue.pop()
        if path in html_pages:
            continue
        response = await client.get(path, headers={"Accept": "text/html"})
        assert response.status_code == 200, (path, response.status_code)
        if "text/html" not in response.headers["content-type"]:
            html_pages[path] = []
            continue
        refs = References()
        refs.feed(response.text)
        html_pages[path] = refs.loads + refs.links
        for url in refs.loads:
            if same_host(url, path):
                assets.add(urlsplit(urljoin(BASE + path, url)).path)
        for url in refs.links:
            target = urlsplit(urljoin(BASE + path, url))
            if same_host(url, path) and target.path not in html_pages:
                queue.append(target.path)
    seen: set[str] = set()
    while assets:
        path = assets.pop()
        if path in seen:
            continue
        seen.add(path)
        response = await client.get(path)
        assert response.status_code == 200, (path, response.status_code)
        found: list[str] = []
        if path.endswith(".css"):
            found = [a or b for a, b in CSS_URL.findall(response.text)]
        elif path.endswith(".js") and "/vendor/" not in path:
            found = [a or b for a, b in JS_IMPORT.findall(response.text)]
            # rebill's own scripts name no other host at all, not even in a string.
            assert not ANY_URL.findall(response.text), (path, ANY_URL.findall(response.text))
        html_pages[path] = found
        for url in found:
            if same_host(url, path) and not url.startswith("data:"):
                assets.add(urlsplit(urljoin(BASE + path, url)).path)
    return html_pages


async def test_no_page_served_by_rebill_references_another_host(client: httpx.AsyncClient) -> None:
    references = await crawl(client)
    assert {"/", "/admin", "/graphql", "/docs", "/static/admin/main.js", "/static/admin/bulk.js"} <= set(references)
    assert any("/vendor/graphiql" in path for path in references)
    elsewhere = {path: [u for u in urls if not same_host(u, path)] for path, urls in references.items()}
    assert {path: urls for path, urls in elsewhere.items() if urls} == {}


async def test_pages_tell_the_browser_to_load_nothing_from_elsewhere(client: httpx.AsyncClient) -> None:
    for path in PAGES:
        response = await client.get(path, headers={"Accept": "text/html"})
        policy = response.headers["content-security-policy"]
        assert "default-src 'self'" in policy and "connect-src 'self'" in policy, path


async def test_the_landing_page_links_to_the_console_graphiql_health_and_docs_with_the_version(
    client: httpx.AsyncClient,
) -> None:
    response = await client.get("/")
    refs = References()
    refs.feed(response.text)
    assert {"/admin", "/graphql", "/healthz", "/docs", "/schema.graphql"} <= set(refs.links)
    assert metadata.version("rebill") in response.text
    schema = await client.get("/schema.graphql")
    assert "type Subscription" in schema.text and "subscriptions(" in schema.text


async def test_the_docs_page_is_the_readme_with_no_link_or_image_from_elsewhere(client: httpx.AsyncClient) -> None:
    page = await client.get("/docs")
    assert page.status_code == 200
    refs = References()
    refs.feed(page.text)
    for heading in ("Quick start", "Admin console", "Command line", "Configuration"):
        assert f"<h2>{heading}</h2>" in page.text
    assert "SECRET=$(rebill apikey create --name me --scope admin | tail -1)" in page.text.replace("&quot;", '"')
    assert all(same_host(url, "/docs") for url in refs.loads + refs.links)
    assert "<img" not in page.text.split("<article>", 1)[1]


async def test_graphiql_and_the_schema_are_not_served_when_turned_off(services: Any, admin_key: str) -> None:
    from dataclasses import replace

    from rebill.app import create_app

    services.settings = replace(services.settings, graphiql=False, introspection=False)
    transport = httpx.ASGITransport(app=create_app(services))
    async with httpx.AsyncClient(transport=transport, base_url=BASE) as anonymous:
        page = await anonymous.get("/graphql", headers={"Accept": "text/html"})
        assert "graphiql" not in page.text.lower()
        assert (await anonymous.get("/schema.graphql")).status_code == 404
        for path in ("/", "/admin", "/docs"):
            assert 'href="/graphql"' not in (await anonymous.get(path)).text, path
