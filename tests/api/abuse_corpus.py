"""Hostile requests: each is refused or answered quickly, and the server keeps answering everyone else.

Used by ``tests/api/test_abuse.py`` (every item, with no key, a read key and an
admin key) and by ``bench/abuse.py`` (the latency others see while these are
sent).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

SMALL_QUERY = "{ subscriptions(first: 5) { totalCount edges { node { id status } } } }"


@dataclass(frozen=True)
class Abuse:
    name: str
    method: str = "POST"
    query: str | None = None
    variables: dict[str, Any] | None = None
    content: bytes | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def request(self, auth: dict[str, str]) -> dict[str, Any]:
        """Keyword arguments for ``httpx.Client.request``."""
        headers = {**auth, **self.headers}
        if self.method == "GET":
            return {"method": "GET", "url": "/graphql", "params": {"query": self.query}, "headers": headers}
        if self.content is not None:
            return {"method": "POST", "url": "/graphql", "content": self.content, "headers": headers}
        body = {"query": self.query, "variables": self.variables or {}}
        return {"method": "POST", "url": "/graphql", "json": body, "headers": headers}


def amplified(levels: int) -> str:
    fragments = ["fragment F0 on Subscription { id status }"]
    fragments += [f"fragment F{i} on Subscription {{ ...F{i - 1} ...F{i - 1} }}" for i in range(1, levels + 1)]
    return f"{{ subscriptions(first: 1) {{ edges {{ node {{ ...F{levels} }} }} }} }}\n" + "\n".join(fragments)


def _gid(type_name: str, pk: int) -> str:
    return base64.urlsafe_b64encode(f"{type_name}:{pk}".encode()).decode().rstrip("=")


IDS_QUERY = "query($ids: [ID!]) { subscriptions(filter: { ids: $ids }) { totalCount } }"
HTML = {"Accept": "text/html"}
JSON = {"Content-Type": "application/json"}

CORPUS: list[Abuse] = [
    *(Abuse(f"amplified fragments x{n}", query=amplified(n)) for n in (12, 20, 39)),
    Abuse("amplified fragments as a browser GET", method="GET", query=amplified(39), headers=HTML),
    Abuse("introspection as a browser GET", method="GET", query="{ __schema { types { name } } }", headers=HTML),
    Abuse("1,000 aliases", query="{ " + " ".join(f"a{i}: __typename" for i in range(1000)) + " }"),
    Abuse("deep nesting", query="{ subscriptions { " + "edges { node { " * 400 + "id" + " } }" * 400 + " } }"),
    Abuse(
        "nested brackets", query="{ subscriptions(filter: { ids: " + "[" * 3000 + "]" * 3000 + " }) { totalCount } }"
    ),
    Abuse("one field 400 times", query="{ subscriptions { edges { node { " + "customer { id } " * 400 + "} } } }"),
    Abuse("6,000 tokens", query="{ " + "__typename " * 6000 + "}"),
    Abuse("5,000 ids", query=IDS_QUERY, variables={"ids": [_gid("Subscription", i) for i in range(5000)]}),
    Abuse(
        "200,000 ids",
        content=json.dumps({"query": IDS_QUERY, "variables": {"ids": [str(i) for i in range(200_000)]}}).encode(),
        headers=JSON,
    ),
    Abuse(
        "a long string",
        query="mutation($i: CreateCustomerInput!) { createCustomer(input: $i) { customer { id } } }",
        variables={"i": {"email": "long@example.com", "name": "x" * 500_000}},
    ),
    Abuse(
        "an exponent amount",
        query='{ subscriptions(filter: { amountMin: "1e5000000" }) { totalCount } }',
    ),
    Abuse(
        "an exponent percentage",
        query="query($p: BulkPlanInput!) { bulkPreview(plan: $p) { matched } }",
        variables={"p": {"segments": [{"name": "all", "actions": [{"adjustPrice": {"percent": "1e-5000000"}}]}]}},
    ),
    Abuse("a body of 42", content=b"42", headers=JSON),
    Abuse("invalid UTF-8", content=b'{"query": "\xff\xfe"}', headers=JSON),
    Abuse(
        "5,000-deep JSON",
        content=b'{"query": "{ __typename }", "variables": ' + b"[" * 5000 + b"]" * 5000 + b"}",
        headers=JSON,
    ),
    Abuse("a 2 MB body", content=b'{"query": "{ __typename }", "pad": "' + b"x" * 2_000_000 + b'"}', headers=JSON),
    Abuse(
        "NUL bytes", query='mutation { createCustomer(input: { email: "a\\u0000@example.com" }) { customer { id } } }'
    ),
]
