"""Query cost and rate limits: every response says what it cost; each API key has a leaky bucket.

The cost of a query is the number of objects it asks for: one per object
field, a page's edges times its page size (``first``/``last``, 50 by
default), ``nodes(ids:)`` times its ids; scalars are free, and so is
introspection. A mutation's root field costs 10. Lists that are not pages
(a subscription's items) count as one object. ``requestedQueryCost`` is that
count before execution, assuming full pages; ``actualQueryCost`` counts what
the response holds.

Each API key has a bucket of ``REBILL_RATE_LIMIT_BUCKET`` points that fills
at ``REBILL_RATE_LIMIT_RESTORE`` points a second. A request takes its
requested cost out of the bucket before it runs, in one atomic
``INSERT … ON CONFLICT DO UPDATE … RETURNING`` on ``api_rate_limits``: every
API process on the database shares the bucket, and two requests can never
both spend the same points. A request that would overdraw it does not run:
HTTP 429, ``Retry-After`` (whole seconds until the points are there), and
``THROTTLED``. A request asking for more than a full bucket can never run:
``MAX_COST_EXCEEDED``.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLList,
    GraphQLNamedType,
    GraphQLNonNull,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    is_leaf_type,
    value_from_ast_untyped,
)
from graphql.execution import ExecutionResult as GraphQLExecutionResult
from graphql.utilities import get_operation_ast
from sqlalchemy import Float, Text, bindparam, text
from sqlalchemy.ext.asyncio import AsyncEngine
from strawberry.extensions import SchemaExtension

from rebill.config import Settings
from rebill.db.driver import Prepared
from rebill.schema.common import DEFAULT_PAGE

MUTATION_COST = 10
PAGE_ARGUMENTS = ("first", "last")

# -- cost ------------------------------------------------------------------------------


@dataclass
class _Walk:
    schema: GraphQLSchema
    fragments: dict[str, FragmentDefinitionNode]
    variables: dict[str, Any]

    def argument(self, node: FieldNode, name: str) -> Any:
        for arg in node.arguments or ():
            if arg.name.value == name:
                return value_from_ast_untyped(arg.value, self.variables)
        return None

    def page_size(self, node: FieldNode) -> int:
        for name in PAGE_ARGUMENTS:
            value = self.argument(node, name)
            if isinstance(value, int) and not isinstance(value, bool):
                return max(value, 0)
        return DEFAULT_PAGE

    def fields(self, selection_set: SelectionSetNode, parent: GraphQLNamedType) -> list[tuple[FieldNode, Any]]:
        """The fields a selection set selects (fragments expanded), each with its parent type."""
        found: list[tuple[FieldNode, Any]] = []
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                found.append((selection, parent))
            elif isinstance(selection, InlineFragmentNode):
                on = self.schema.get_type(selection.type_condition.name.value) if selection.type_condition else parent
                found += self.fields(selection.selection_set, on or parent)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment is not None:
                    on = self.schema.get_type(fragment.type_condition.name.value)
                    found += self.fields(fragment.selection_set, on or parent)
        return found

    def _ids(self, node: FieldNode) -> int:
        ids = self.argument(node, "ids")
        return len(ids) if isinstance(ids, list) else 1


@dataclass(frozen=True, slots=True)
class _Count:
    """An object field of a selection set, compiled once per document: a page's size (``connection``)
    sets how many edges count below it."""

    key: str
    name: str
    node: FieldNode
    is_list: bool
    connection: bool
    children: tuple[_Count, ...]


def _compile(walk: _Walk, selection_set: SelectionSetNode | None, parent: Any, memo: dict[Any, Any]) -> Any:
    """The object fields under a selection set, in its order (fragments expanded); scalars and
    introspection are free, so they are left out."""
    if selection_set is None:
        return ()
    memo_key = (id(selection_set), parent)
    found = memo.get(memo_key)
    if found is not None:
        return found
    counts: list[_Count] = []
    for node, on in walk.fields(selection_set, parent):
        name = node.name.value
        if name.startswith("__") or not hasattr(on, "fields") or name not in on.fields:
            continue
        returned = on.fields[name].type
        named = get_named_type(returned)
        if is_leaf_type(named):
            continue
        is_list = isinstance(returned.of_type if isinstance(returned, GraphQLNonNull) else returned, GraphQLList)
        key = node.alias.value if node.alias else name
        children = _compile(walk, node.selection_set, named, memo)
        counts.append(_Count(key, name, node, is_list, named.name.endswith("Connection"), children))
    compiled = tuple(counts)
    memo[memo_key] = compiled
    return compiled


def _requested(walk: _Walk, counts: tuple[_Count, ...], page: int = 1) -> int:
    """Objects asked for, assuming full pages: a list counts its page size for ``edges``, the ids
    asked for ``nodes``, and one item otherwise."""
    total = 0
    for c in counts:
        size = walk.page_size(c.node) if c.connection else 1
        if c.is_list:
            many = page if c.name == "edges" else walk._ids(c.node) if c.name == "nodes" else 1
            total += many * (1 + _requested(walk, c.children, size))
        else:
            total += 1 + _requested(walk, c.children, size)
    return total


def _returned(counts: tuple[_Count, ...], data: Any) -> int:
    """Objects in a response: every edge and node returned, one item of other lists (walked with a
    stack: a page of fifty is a few hundred objects)."""
    total = 0
    stack: list[tuple[tuple[_Count, ...], Any]] = [(counts, data)]
    while stack:
        below, value = stack.pop()
        if not isinstance(value, dict):
            continue
        for c in below:
            found = value.get(c.key)
            if found is None:
                continue
            children = c.children
            if c.is_list:
                items = [v for v in found if v is not None]
                counted = items if c.name == "edges" or c.name == "nodes" else items[:1]
                total += len(counted)
                if children:
                    stack.extend([(children, item) for item in counted])
            else:
                total += 1
                if children:
                    stack.append((children, found))
    return total


@dataclass(frozen=True)
class Costs:
    requested: int
    operation: OperationDefinitionNode
    walk: _Walk
    root: GraphQLObjectType
    counts: tuple[_Count, ...] = ()

    def actual(self, data: Any) -> int:
        if not isinstance(data, dict):
            return 0
        spent = _returned(self.counts, data)
        if self.operation.operation == OperationType.MUTATION:
            spent += (MUTATION_COST - 1) * sum(
                1
                for node, _ in self.walk.fields(self.operation.selection_set, self.root)
                if data.get(node.alias.value if node.alias else node.name.value) is not None
            )
        return spent


class CostPlans:
    """Compiled counts by document (the parser cache hands back the same document for the same text)."""

    def __init__(self, maxsize: int = 512) -> None:
        self.maxsize = maxsize
        self.entries: OrderedDict[tuple[int, str | None], tuple[DocumentNode, tuple[_Count, ...]]] = OrderedDict()

    def get(self, document: DocumentNode, operation_name: str | None) -> tuple[_Count, ...] | None:
        found = self.entries.get((id(document), operation_name))
        if found is None or found[0] is not document:
            return None
        self.entries.move_to_end((id(document), operation_name))
        return found[1]

    def put(self, document: DocumentNode, operation_name: str | None, counts: tuple[_Count, ...]) -> None:
        self.entries[(id(document), operation_name)] = (document, counts)
        while len(self.entries) > self.maxsize:
            self.entries.popitem(last=False)


def query_costs(
    schema: GraphQLSchema,
    document: DocumentNode,
    operation_name: str | None,
    variables: dict[str, Any] | None,
    plans: CostPlans | None = None,
) -> Costs | None:
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return None
    root = schema.mutation_type if operation.operation == OperationType.MUTATION else schema.query_type
    if root is None:
        return None
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    walk = _Walk(schema, fragments, variables or {})
    counts = plans.get(document, operation_name) if plans is not None else None
    if counts is None:
        counts = _compile(walk, operation.selection_set, root, {})
        if plans is not None:
            plans.put(document, operation_name, counts)
    requested = _requested(walk, counts)
    if operation.operation == OperationType.MUTATION:
        requested += (MUTATION_COST - 1) * len(walk.fields(operation.selection_set, root))
    return Costs(requested, operation, walk, root, counts)


# -- the bucket ------------------------------------------------------------------------

# The level now: what was left plus what flowed back since, capped at the bucket's size.
_LEVEL = "least(:size, b.available + :restore * extract(epoch FROM clock_timestamp() - b.updated_at))"
TAKE = text(
    f"""
    INSERT INTO api_rate_limits AS b (bucket, available, granted, updated_at)
    VALUES (:bucket, CASE WHEN :cost <= :size THEN :size - :cost ELSE :size END, :cost <= :size, clock_timestamp())
    ON CONFLICT (bucket) DO UPDATE SET
        available = CASE WHEN {_LEVEL} >= :cost THEN {_LEVEL} - :cost ELSE {_LEVEL} END,
        granted = {_LEVEL} >= :cost,
        updated_at = clock_timestamp()
    RETURNING available, granted
    """
).bindparams(
    bindparam("bucket", type_=Text),
    bindparam("cost", type_=Float),
    bindparam("size", type_=Float),
    bindparam("restore", type_=Float),
)


_TAKE = Prepared(TAKE)


@dataclass(frozen=True)
class Throttle:
    granted: bool
    available: float
    size: int
    restore: float

    def retry_after(self, cost: int) -> int:
        """Whole seconds until ``cost`` points are in the bucket."""
        return max(1, math.ceil((cost - self.available) / self.restore)) if self.restore > 0 else 3600

    def status(self) -> dict[str, Any]:
        return {
            "maximumAvailable": self.size,
            "currentlyAvailable": int(self.available),
            "restoreRate": self.restore if self.restore != int(self.restore) else int(self.restore),
        }


async def take(engine: AsyncEngine, bucket: str, cost: int, size: int, restore: float) -> Throttle:
    """Take ``cost`` points from the bucket if it holds them (one atomic statement); the bucket after."""
    # One statement is its own transaction: no BEGIN and COMMIT round trips around it, on the driver.
    row = (await _TAKE.fetch(engine, bucket=bucket, cost=float(cost), size=float(size), restore=restore))[0]
    return Throttle(bool(row.granted), float(row.available), size, restore)


def bucket_of(actor: Any) -> str | None:
    if actor is None:
        return None
    key_id = getattr(actor, "api_key_id", None)
    return f"key:{key_id}" if key_id is not None else f"actor:{actor.name}"


# -- the extension ---------------------------------------------------------------------


class QueryCost(SchemaExtension):
    """Charges each operation to its key's bucket before it runs; reports the cost in ``extensions.cost``."""

    def __init__(self, *, size: int, restore: float, plans: CostPlans | None = None) -> None:
        self.size = size
        self.restore = restore
        self.plans = plans
        self.costs: Costs | None = None
        self.throttle: Throttle | None = None
        self.actual = 0

    def _engine_and_bucket(self) -> tuple[AsyncEngine, str] | None:
        context = self.execution_context.context
        services = getattr(context, "services", None)
        bucket = bucket_of(getattr(context, "actor", None))
        if services is None or bucket is None:
            return None
        return services.engine, bucket

    async def on_execute(self) -> AsyncIterator[None]:
        ctx = self.execution_context
        target = self._engine_and_bucket()
        if target is not None and ctx.graphql_document is not None:
            self.costs = query_costs(
                ctx.schema._schema, ctx.graphql_document, ctx.operation_name, ctx.variables, self.plans
            )
        if target is None or self.costs is None:
            yield
            return
        engine, bucket = target
        requested = self.costs.requested
        if requested > self.size:
            self.throttle = await take(engine, bucket, 0, self.size, self.restore)
            self._refuse(
                f"this query could cost {requested} points, more than a full bucket of {self.size}: "
                "ask for smaller pages (first/last) or fewer fields",
                "MAX_COST_EXCEEDED",
            )
        else:
            self.throttle = await take(engine, bucket, requested, self.size, self.restore)
            if not self.throttle.granted:
                wait = self.throttle.retry_after(requested)
                self._refuse(
                    f"throttled: this query costs {requested} points and {int(self.throttle.available)} are "
                    f"available; {self.restore:g} come back every second (retry in {wait} s)",
                    "THROTTLED",
                    status=429,
                    headers={"Retry-After": str(wait)},
                )
        yield
        result = ctx.result
        data = getattr(result, "data", None)
        self.actual = self.costs.actual(data) if self.throttle.granted and requested <= self.size else 0

    def _refuse(
        self, message: str, code: str, *, status: int | None = None, headers: dict[str, str] | None = None
    ) -> None:
        ctx = self.execution_context
        ctx.result = GraphQLExecutionResult(data=None, errors=[GraphQLError(message, extensions={"code": code})])
        response = getattr(ctx.context, "response", None)
        if response is not None and status is not None:
            response.status_code = status
            for name, value in (headers or {}).items():
                response.headers[name] = value

    async def get_results(self) -> dict[str, Any]:
        if self.throttle is None:
            target = self._engine_and_bucket()
            if target is None:
                return {}
            # Refused before execution (a syntax or validation error): free, but the bucket is shown all the same.
            self.throttle = await take(target[0], target[1], 0, self.size, self.restore)
        requested = self.costs.requested if self.costs is not None else 0
        return {
            "cost": {
                "requestedQueryCost": requested,
                "actualQueryCost": self.actual,
                "throttleStatus": self.throttle.status(),
            }
        }


def cost_extensions(settings: Settings) -> list[Callable[[], SchemaExtension]]:
    size, restore = settings.rate_limit_bucket, settings.rate_limit_restore
    plans = CostPlans()
    return [lambda: QueryCost(size=size, restore=restore, plans=plans)]
