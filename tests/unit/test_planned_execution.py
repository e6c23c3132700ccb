"""Plans answer as graphql-core does: the same data, errors, paths and nulls, whatever the fields."""

from __future__ import annotations

import asyncio
import enum
from typing import Any

import pytest
import strawberry
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext

from rebill.schema.common import held
from rebill.schema.execution import PlannedExecutor


@strawberry.enum
class Colour(enum.Enum):
    RED = "red"
    BLUE = "blue"


@strawberry.interface
class Named:
    name: str


@strawberry.type
class Leaf(Named):
    size: int
    colour: Colour
    note: str | None = None

    @strawberry.field
    def broken(self) -> str | None:
        raise ValueError("no note today")

    @strawberry.field
    def must(self) -> str:
        return None  # type: ignore[return-value]


def _twin(root: Node) -> Leaf:
    return root.held_twin if root.held_twin is not None else Leaf(name="made", size=0, colour=Colour.BLUE)


held("held_twin")(_twin)


@strawberry.type
class Node:
    id: strawberry.ID
    leaves: list[Leaf]
    maybe: Leaf | None
    big: int
    twin: Leaf = strawberry.field(resolver=_twin)
    held_twin: strawberry.Private[Leaf | None] = None

    @strawberry.field
    def later(self) -> Leaf:
        future: asyncio.Future[Leaf] = asyncio.get_running_loop().create_future()
        future.set_result(self.leaves[0])
        return future  # type: ignore[return-value]

    @strawberry.field
    async def slowly(self) -> list[Leaf]:
        await asyncio.sleep(0)
        return self.leaves

    @strawberry.field
    def named(self) -> list[Named]:
        return self.leaves  # type: ignore[return-value]

    @strawberry.field
    def strict(self) -> list[Leaf]:
        return [self.leaves[0], None]  # type: ignore[list-item]


SHARED = Leaf(name="shared", size=7, colour=Colour.RED)


def nodes() -> list[Node]:
    return [
        Node(
            id=strawberry.ID(str(n)),
            leaves=[SHARED, Leaf(name=f"leaf {n}", size=n, colour=Colour.BLUE, note="x" if n % 2 else None)],
            maybe=None if n % 2 else SHARED,
            big=2**40 if n == 2 else n,
            held_twin=SHARED if n % 2 else None,
        )
        for n in range(4)
    ]


@strawberry.type
class Query:
    @strawberry.field
    def nodes(self) -> list[Node]:
        return nodes()

    @strawberry.field
    def node(self, n: int) -> Node | None:
        return nodes()[n] if n < 4 else None


QUERIES = [
    "{ nodes { id leaves { name size colour note } maybe { name } twin { name } } }",
    "{ nodes { __typename id a: leaves { n: name } b: leaves { size } } }",
    "{ nodes { later { name colour } slowly { name size } } }",
    "{ nodes { leaves { broken } } }",
    "{ nodes { leaves { must } } }",
    "{ nodes { id strict { name } } }",
    "{ nodes { big } }",
    "{ nodes { named { __typename ... on Leaf { size } } } }",
    "{ node(n: 1) { id ...F } other: node(n: 9) { id } } fragment F on Node { leaves { ... on Leaf { name } } }",
    "query($x: Boolean!) { nodes { id leaves @include(if: $x) { name } maybe @skip(if: $x) { size } } }",
]


def run(schema: strawberry.Schema, query: str) -> dict[str, Any]:
    result = asyncio.run(schema.execute(query, variable_values={"x": True}))
    errors = sorted((str(e.message), tuple(e.path or ())) for e in result.errors or [])
    return {"data": result.data, "errors": errors}


@pytest.mark.parametrize("query", QUERIES)
def test_a_plan_answers_as_graphql_core_does(query: str) -> None:
    planned = strawberry.Schema(query=Query, execution_context_class=PlannedExecutor)
    plain = strawberry.Schema(query=Query, execution_context_class=StrawberryGraphQLCoreExecutionContext)
    assert run(planned, query) == run(plain, query)
    assert run(planned, query) == run(planned, query), "a plan kept from the first request answers the same"
