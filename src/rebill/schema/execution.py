"""Executing a document without graphql-core's per-field ceremony where a field needs none.

graphql-core builds a resolve info, calls a resolver and completes the value
for every field of every object: about 6 µs a field, so a page of 50
subscriptions with their items, profile and customer (1,600 fields) spent
10 ms there before its SQL had run. Most of those fields are attributes of an
object built already (Strawberry's "basic" fields), and most of the others are
relations that a DataLoader holds by the time they are asked for (the page
resolvers load what their selection asks for first).

``PlannedExecutor`` runs each selection set from a plan compiled to one
function, for every object in one loop: a scalar attribute is read and
serialized in place; an object attribute is completed from its own plan; a
resolver without arguments, permissions or extensions is called directly, and
a DataLoader future it returns is used at once when it is already done. Every
other field (the root fields, fields with arguments, permission classes or
extensions, abstract types, lists that are not lists) takes graphql-core's own
path, and every error is handed to graphql-core's own handler, so the errors,
their paths and the nulls they leave are graphql-core's.

A plan depends on the selection set's fields (the parser cache hands back the
same document for the same text) and not on the request: it is made once and
kept, and every request runs it with its own executor (``ex``), which keeps
what is the request's own (its errors, what it has answered already).
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import keyword
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from functools import partial
from types import CodeType, GeneratorType
from typing import Any

from graphql import (
    GraphQLBoolean,
    GraphQLField,
    GraphQLID,
    GraphQLInt,
    GraphQLLeafType,
    GraphQLList,
    GraphQLObjectType,
    GraphQLOutputType,
    GraphQLString,
    is_leaf_type,
    is_list_type,
    is_non_null_type,
    is_object_type,
)
from graphql.execution.collect_fields import FieldDetailsList, GroupedFieldSet
from graphql.execution.executor import Executor, invalid_return_type_error, to_nodes
from graphql.pyutils import Path, Undefined, gather_with_cancel
from graphql.type.introspection import TypeNameMetaFieldDef
from strawberry.extensions import SchemaExtension
from strawberry.extensions.context import (
    ExecutingContextManager,
    ExtensionContextManagerBase,
    OperationContextManager,
    ParsingContextManager,
    ValidationContextManager,
    WrappedHook,
)
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.schema.schema import StrawberryGraphQLCoreExecutionContext
from strawberry.schema.schema_converter import CustomGraphQLEnumType, GraphQLCoreConverter
from strawberry.types.cast import TYPE_CAST_ATTRIBUTE
from strawberry.types.info import Info

BACKREF = GraphQLCoreConverter.DEFINITION_BACKREF

#: How a step resolves its field: graphql-core's way, a scalar attribute, another attribute, a direct
#: call, or ``__typename``.
GENERAL, LEAF, ATTRIBUTE, CALL, TYPENAME = range(5)

#: Completes a resolved value at a path for a request's executor: the response value, or an awaitable
#: of it. Raises on a field error.
Complete = Callable[[Any, Any, Path], Any]
#: A selection set's plan, compiled: an object's fields at a path (a dict, or an awaitable of it).
Run = Callable[[Any, Any, Path | None], Any]

#: Scalars whose serialization gives a value of this exact type back unchanged.
_UNCHANGED: dict[Any, type] = {GraphQLString: str, GraphQLID: str, GraphQLBoolean: bool}
#: Types whose values are never awaitable: the plain values, then each type found not to be (an
#: object's awaitability is its type's, generators aside, whose coroutine flag is per object).
_NEVER_AWAITABLE: set[type] = {dict, list, str, int, bool, float, type(None)}


def _awaiting(is_awaitable: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """``is_awaitable`` that remembers the types it said no to."""
    never = _NEVER_AWAITABLE

    def awaiting(value: Any) -> bool:
        kind = type(value)
        if kind in never:
            return False
        if is_awaitable(value):
            return True
        if kind is not GeneratorType:
            never.add(kind)
        return False

    return awaiting


async def _gather_results(results: dict[str, Any], pending: list[str]) -> dict[str, Any]:
    """An object's fields once those that were awaitable are done; as ``Executor.execute_fields``."""
    if len(pending) == 1:
        name = pending[0]
        results[name] = await results[name]
    else:
        values = await gather_with_cancel(*(results[name] for name in pending))
        results.update(zip(pending, values, strict=True))
    return results


_UNSET = object()

#: Compiled plans by shape (each step's kind, response name, attribute, nullability and field name).
_CODE: OrderedDict[tuple[Any, ...], CodeType] = OrderedDict()
_CODE_SIZE = 2048


class Later(Exception):  # control flow inside a plan, never raised out of one
    """A field's value is awaitable: it is gathered with the object's other pending fields."""


def _read(attr: str) -> str:
    return f"source.{attr}" if attr.isidentifier() and not keyword.iskeyword(attr) else f"getattr(source, {attr!r})"


def _call(k: int, wants: tuple[bool, str | None, str | None, str | None]) -> str:
    """The call of step ``k``'s resolver: self, root or parent, and info as its parameters ask."""
    wants_self, info, parent, root = wants
    arguments = ["source"] if wants_self else []
    arguments += [f"{name}=source" for name in (parent, root) if name is not None]
    if info is not None:
        arguments.append(f"{info}=make_info(ex, step_{k}, parent, field_path)")
    return f"resolver_{k}({', '.join(arguments)})"


def _object_inline(k: int, whole: str) -> list[str]:
    """``complete_k`` for an object field, written out: its null, then the answer it gave already or
    its plan's run, as ``_object_completer`` does (its own call for anything else: a value of another
    class, or one that may be cast, or the field's first value in the request)."""
    on_null = f"raise null_error(*null_{k})" if whole == "non-null" else "value = None"
    return [
        "            if value is None or value is Undefined:",
        f"                {on_null}",
        f"            elif type(value) is not origin_{k} or castable_{k} or cast_attribute in value.__dict__:",
        f"                value = complete_{k}(ex, value, field_path)",
        "            else:",
        f"                answers = ex._objects.get(complete_{k})",
        "                known = answers.memo.get(id(value)) if answers is not None else None",
        "                if known is not None and known[0] is value:",
        "                    value = known[1]",
        "                elif answers is None:",
        f"                    value = complete_{k}(ex, value, field_path)",
        "                else:",
        "                    errors = ex._errors",
        "                    result = answers.plan.run(ex, value, field_path)",
        "                    if type(result) is dict and ex._errors == errors:",
        "                        if answers.pure is None:",
        "                            answers.pure = ex._pure(answers.plan)",
        "                        if answers.pure:",
        "                            answers.memo[id(value)] = (value, result)",
        "                    value = result",
    ]


def _source(shape: tuple[Any, ...]) -> str:
    """The source of a plan's ``run(ex, source, path)``; its names are bound by ``Planner.compile``."""
    lines = ["def run(ex, source, path):", "    results = {}", "    pending = None", "    try:"]
    if any(entry[6] or entry[8] for entry in shape):
        lines.insert(1, "    fields = getattr(source, '__dict__', none)")
    for k, (kind, name, attr, non_null, field_name, call, from_row, scalar, held, whole) in enumerate(shape):
        key = repr(name)
        if kind == TYPENAME:
            lines.append(f"        results[{key}] = parent_name")
        elif kind == LEAF:
            read = _read(attr)
            on_null = f"raise null_error(parent, {field_name!r})" if non_null else "pass"
            if from_row:
                # A field of a node read from a row (``RowBacked``): computed from the row here, once
                # (its ``__getattr__`` would do the same by one more call).
                read_value = [
                    f"            value = fields.get({attr!r}, unset)",
                    "            if value is unset:",
                    "                row = fields.get('row')",
                    f"                value = from_row_{k}(row) if row is not None else {read}",
                ]
            else:
                read_value = [f"            value = {read}"]
            # What serializes to itself needs no call: a str or bool as it is, an Int within 32 bits,
            # an enum member by its name from a table.
            if scalar == "int":
                fast = "            elif type(value) is not int or not -2147483648 <= value <= 2147483647:"
                coerce = [f"                coerced = coerce_{k}(value)"]
            elif scalar == "enum":
                fast = "            else:"
                coerce = [
                    f"                coerced = names_{k}.get(id(value))",
                    "                if coerced is None:",
                    f"                    coerced = coerce_{k}(value)",
                ]
            else:
                fast = f"            elif type(value) is not unchanged_{k}:"
                coerce = [f"                coerced = coerce_{k}(value)"]
            lines += [
                "        try:",
                *read_value,
                "            if value is None:",
                f"                {on_null}",
                fast,
                *coerce,
                "                if coerced is None or coerced is Undefined:",
                f"                    coerced = complete_leaf_value(leaf_{k}, value)",
                "                value = coerced",
                f"            results[{key}] = value",
                "        except Exception as error:",
                f"            ex._field_error(error, step_{k}, parent, path)",
                f"            results[{key}] = None",
            ]
        elif kind == GENERAL:
            lines += [
                f"        value = ex.execute_field(parent, source, step_{k}.field_details, "
                f"Path(path, {key}, parent_name), None)",
                "        if value is not Undefined:",
                f"            results[{key}] = value",
                "            if type(value) not in never and ex._awaiting(value):",
                f"                pending = [*(pending or ()), {key}]",
            ]
        else:
            # An attribute, or a resolver called as Strawberry calls it; completed in place, or once it
            # is done when it is awaitable (a DataLoader's future that is done already is used at once).
            if kind == ATTRIBUTE and from_row:
                resolve = [
                    f"            value = fields.get({attr!r}, unset)",
                    "            if value is unset:",
                    "                row = fields.get('row')",
                    f"                value = from_row_{k}(row) if row is not None else {_read(attr)}",
                ]
            elif kind == ATTRIBUTE:
                resolve = [f"            value = {_read(attr)}"]
            else:
                resolve = [
                    f"            value = {call}",
                    "            if type(value) not in never and ex._awaiting(value):",
                    "                if isinstance(value, Future) and value.done():",
                    "                    value = value.result()",
                    "                else:",
                    f"                    value = ex._complete_later(step_{k}, value, field_path)",
                    "                    raise Later",
                ]
                if held:
                    # What a page's resolver put on the node ahead (``rebill.schema.common.held``):
                    # the resolver is called only without it.
                    resolve = [
                        f"            value = fields.get({held!r})",
                        "            if value is None:",
                        *("    " + line for line in resolve),
                    ]
            lines += [
                f"        field_path = new_path(Path, (path, {key}, parent_name))",
                "        try:",
                *resolve,
                *(_object_inline(k, whole) if whole else [f"            value = complete_{k}(ex, value, field_path)"]),
                "            if type(value) not in never and ex._awaiting(value):",
                f"                value = ex._guarded(value, step_{k}.return_type, step_{k}.field_details, field_path)",
                "                raise Later",
                "        except Later:",
                f"            pending = [*(pending or ()), {key}]",
                "        except Exception as error:",
                f"            ex.handle_field_error(error, step_{k}.return_type, step_{k}.field_details, field_path)",
                "            value = None",
                f"        results[{key}] = value",
            ]
    lines += [
        "    except Exception:",
        "        if pending:",
        "            ex.settle_in_background([results[name] for name in pending])",
        "        raise",
        "    if pending is None:",
        "        return results",
        "    return gather_results(results, pending)",
    ]
    return "\n".join(lines)


_COERCERS: dict[Any, Callable[[Any], Any]] = {}


def _coercer(leaf: Any) -> Callable[[Any], Any]:
    """``leaf.coerce_output_value``; for Strawberry's enums, by a table of members (Strawberry looks
    the member up among the values one by one)."""
    found = _COERCERS.get(leaf)
    if found is not None:
        return found
    coerce = leaf.coerce_output_value
    if isinstance(leaf, CustomGraphQLEnumType):
        names: dict[Any, str] = {}
        member: Any
        for member in leaf.wrapped_cls:
            for name, value in leaf.values.items():
                if member.value == value.value:
                    names[member] = name
                    break
        wrapped = leaf.wrapped_cls

        def coerce_enum(value: Any) -> Any:
            name = names.get(value) if isinstance(value, wrapped) else None
            return name if name is not None else coerce(value)

        found = coerce_enum
    else:
        found = coerce
    _COERCERS[leaf] = found
    return found


def _scalar_kind(leaf: Any) -> str:
    """How a plan serializes a leaf in place: "int" (a 32-bit int as it is), "enum" (by table), or ""."""
    if leaf is GraphQLInt:
        return "int"
    return "enum" if isinstance(leaf, CustomGraphQLEnumType) else ""


def _enum_names(leaf: Any) -> dict[int, str] | None:
    """A Strawberry enum's names by the id of their member (members are singletons; their hash is a
    Python method)."""
    if not isinstance(leaf, CustomGraphQLEnumType):
        return None
    names: dict[int, str] = {}
    member: Any
    for member in leaf.wrapped_cls:
        for name, value in leaf.values.items():
            if member.value == value.value:
                names[id(member)] = name
                break
    return names


def _null_error(parent: GraphQLObjectType, name: str) -> TypeError:
    return TypeError(f"Cannot return null for non-nullable field {parent}.{name}.")


def _strawberry_is_type_of(check: Any) -> bool:
    """Whether ``is_type_of`` is one Strawberry generated (an ``isinstance`` check that ignores its info)."""
    return getattr(check, "__module__", "") == "strawberry.schema.schema_converter" and check.__name__ == "is_type_of"


class _PlannedInfo(Info):
    """Strawberry's ``Info`` whose graphql-core resolve info is built on first use; ``context`` is read
    straight from the executor."""

    def __init__(self, executor: PlannedExecutor, step: Step, parent_type: Any, path: Path) -> None:
        self._planned = (executor, step, parent_type, path)
        self._field = step.field_def.extensions[BACKREF]  # type: ignore[union-attr]

    @property
    def context(self) -> Any:
        return self._planned[0].context_value

    def __getattr__(self, name: str) -> Any:
        if name != "_raw_info":
            raise AttributeError(name)
        executor, step, parent_type, path = self.__dict__["_planned"]
        assert step.field_def is not None
        raw = executor.build_resolve_info(step.field_def, to_nodes(step.field_details), parent_type, path)
        self.__dict__["_raw_info"] = raw
        return raw


def _built_info(executor: PlannedExecutor, step: Step, parent_type: Any, path: Path) -> Any:
    """An application's own Info class, built as Strawberry builds it."""
    return executor._info_of(step, parent_type, path)


class Step:
    """One response key of a selection set, and how to produce its value."""

    __slots__ = (
        "attr",
        "coerce",
        "complete",
        "field_def",
        "field_details",
        "field_name",
        "held",
        "kind",
        "leaf",
        "name",
        "non_null",
        "resolver",
        "return_type",
        "unchanged",
        "wants",
    )

    def __init__(self, kind: int, name: str, field_details: FieldDetailsList, field_def: GraphQLField | None) -> None:
        self.kind = kind
        self.name = name
        self.field_details = field_details
        self.field_name = field_details[0].node.name.value
        self.field_def = field_def
        self.return_type: GraphQLOutputType | None = field_def.type if field_def is not None else None
        self.attr = ""
        self.resolver: Any = None
        self.wants: tuple[bool, str | None, str | None, str | None] = (False, None, None, None)
        self.complete: Complete | None = None
        self.leaf: Any = None
        self.coerce: Any = None
        self.unchanged: type | None = None
        self.non_null = False
        self.held: str | None = None


class Plan:
    """A selection set's plan: its steps and their compiled ``run``."""

    __slots__ = ("run", "steps")

    def __init__(self, steps: list[Step], run: Run) -> None:
        self.steps = steps
        self.run = run


#: Plans by parent type and fields (each response name and the field nodes merged into it). The field
#: sets are kept with them, so that no node they name is freed and its id taken by another.
_PLANS: OrderedDict[tuple[Any, ...], tuple[GroupedFieldSet, Plan]] = OrderedDict()
_PLANS_SIZE = 4096


class Planner:
    """Makes plans for one schema (once per selection set, whichever request first runs it)."""

    def __init__(self, schema: Any, planning: bool, info_class: Any = Info) -> None:
        self.schema = schema
        self.info_class = info_class
        # Direct calls skip what Strawberry wraps around a resolver: only safe with nothing to wrap.
        self.planning = planning

    def plan(self, parent_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet) -> Plan:
        entries = []
        for name, details in grouped_field_set.items():
            first = details[0]
            if first.fragment_variable_values is not None:  # fragment arguments: planned for this request
                return self._make(parent_type, grouped_field_set)
            entries.append((name, id(first.node)) if len(details) == 1 else (name, *[id(d.node) for d in details]))
        key = (parent_type, self.planning, *entries)
        found = _PLANS.get(key)
        if found is not None:
            _PLANS.move_to_end(key)
            return found[1]
        plan = self._make(parent_type, grouped_field_set)
        _PLANS[key] = (grouped_field_set, plan)
        while len(_PLANS) > _PLANS_SIZE:
            _PLANS.popitem(last=False)
        return plan

    def _make(self, parent_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet) -> Plan:
        steps = [self.step(parent_type, name, details) for name, details in grouped_field_set.items()]
        return Plan(steps, self.compile(steps, parent_type))

    def compile(self, steps: list[Step], parent_type: GraphQLObjectType) -> Run:
        """The plan as one function of (ex, source, path): ``execute_fields`` for this selection set,
        its steps written out in order so that no step is looked up or dispatched on while it runs.
        The code depends on the plan's shape only and is compiled once per shape."""
        definition = parent_type.extensions.get(BACKREF) if parent_type.extensions else None
        names: dict[str, Any] = {
            "unset": _UNSET,
            "none": {},
            "Path": Path,
            # A Path as its NamedTuple constructor makes it, without that constructor's Python call.
            "new_path": tuple.__new__,
            "Undefined": Undefined,
            "Future": asyncio.Future,
            "Later": Later,
            "parent": parent_type,
            "parent_name": parent_type.name,
            "null_error": _null_error,
            "complete_leaf_value": Executor.complete_leaf_value,
            "never": _NEVER_AWAITABLE,
            "gather_results": _gather_results,
            "make_info": _PlannedInfo if self.info_class is Info else _built_info,
            "cast_attribute": TYPE_CAST_ATTRIBUTE,
        }
        calls: list[str | None] = []
        for k, step in enumerate(steps):
            if step.complete in _OBJECTS:
                names[f"origin_{k}"], names[f"castable_{k}"], _ = _OBJECTS[step.complete]
                names[f"null_{k}"] = _OBJECT_NULLS.get(step.complete)
            names[f"step_{k}"] = step
            names[f"complete_{k}"] = step.complete
            names[f"resolver_{k}"] = step.resolver
            if step.kind == LEAF:
                names[f"unchanged_{k}"] = step.unchanged
                names[f"coerce_{k}"] = step.coerce
                names[f"leaf_{k}"] = step.leaf
                names[f"names_{k}"] = _enum_names(step.leaf)
            calls.append(_call(k, step.wants) if step.kind == CALL else None)
        from_row: dict[str, Any] = getattr(getattr(definition, "origin", None), "FROM_ROW", None) or {}
        for k, step in enumerate(steps):
            if step.kind in (LEAF, ATTRIBUTE) and step.attr in from_row:
                names[f"from_row_{k}"] = from_row[step.attr]
        shape = tuple(
            (
                step.kind,
                step.name,
                step.attr,
                step.non_null,
                step.field_name,
                call,
                step.kind in (LEAF, ATTRIBUTE) and step.attr in from_row,
                _scalar_kind(step.leaf) if step.kind == LEAF else "",
                step.held,
                _OBJECTS[step.complete][2] if step.complete in _OBJECTS else None,
            )
            for step, call in zip(steps, calls, strict=True)
        )
        code = _CODE.get(shape)
        if code is None:
            code = compile(_source(shape), f"<plan of {parent_type.name}>", "exec")
            _CODE[shape] = code
            while len(_CODE) > _CODE_SIZE:
                _CODE.popitem(last=False)
        exec(code, names)
        run: Run = names["run"]
        return run

    def step(self, parent_type: GraphQLObjectType, name: str, details: FieldDetailsList) -> Step:
        node = details[0].node
        field_def = self.schema.get_field(parent_type, node.name.value)
        if field_def is None:
            return Step(GENERAL, name, details, None)
        if field_def is TypeNameMetaFieldDef:
            return Step(TYPENAME, name, details, field_def)
        field = field_def.extensions.get(BACKREF) if field_def.extensions else None
        plain = (
            self.planning
            and field is not None
            and not field_def.args
            and not node.arguments
            and not field.extensions
            and not field.is_subscription
        )
        if not plain or field is None:
            return Step(GENERAL, name, details, field_def)
        resolver = field.base_resolver
        if resolver is None:
            if not getattr(field_def.resolve, "_is_default", False) or field.default_resolver is not getattr:
                return Step(GENERAL, name, details, field_def)
            return_type: Any = field_def.type
            non_null = is_non_null_type(return_type)
            inner = return_type.of_type if non_null else return_type
            if is_leaf_type(inner):
                step = Step(LEAF, name, details, field_def)
                step.leaf, step.coerce, step.non_null = inner, _coercer(inner), non_null
                step.unchanged = _UNCHANGED.get(inner)
            else:
                step = Step(ATTRIBUTE, name, details, field_def)
            step.attr = field.python_name
        else:
            if field.arguments:
                return Step(GENERAL, name, details, field_def)
            step = Step(CALL, name, details, field_def)
            # The function itself: StrawberryResolver.__call__ only checks that it is callable.
            step.resolver = resolver.wrapped_func if callable(resolver.wrapped_func) else resolver
            step.held = getattr(resolver.wrapped_func, "__held__", None)
            info = resolver.info_parameter
            parent = resolver.parent_parameter
            root = resolver.root_parameter
            step.wants = (
                resolver.self_parameter is not None,
                info.name if info is not None else None,
                parent.name if parent is not None else None,
                root.name if root is not None else None,
            )
        step.complete = self.completer(field_def.type, parent_type, field_def, details)
        return step

    def _list_completer(
        self,
        return_type: Any,
        parent_type: GraphQLObjectType,
        field_def: GraphQLField,
        details: FieldDetailsList,
        non_null: bool,
    ) -> Complete:
        return _list_completer_of(self, return_type, parent_type, field_def, details, non_null)

    def completer(
        self,
        return_type: GraphQLOutputType,
        parent_type: GraphQLObjectType,
        field_def: GraphQLField,
        details: FieldDetailsList,
    ) -> Complete:
        """How to complete a value of ``return_type``, as ``Executor.complete_value`` would."""
        field_name = details[0].node.name.value
        if is_non_null_type(return_type):
            if _plain_object(return_type.of_type):
                return _object_completer(return_type.of_type, details, (parent_type, field_name))
            if is_list_type(return_type.of_type):
                return self._list_completer(return_type, parent_type, field_def, details, True)
            inner = self.completer(return_type.of_type, parent_type, field_def, details)

            def complete_non_null(ex: PlannedExecutor, value: Any, path: Path) -> Any:
                completed = inner(ex, value, path)
                if completed is None:
                    raise _null_error(parent_type, field_name)
                return completed

            _PURITY[complete_non_null] = _PURITY.get(inner, _pure_never)
            return complete_non_null
        if is_leaf_type(return_type):
            leaf: GraphQLLeafType = return_type
            coerce = _coercer(leaf)

            def complete_leaf(ex: PlannedExecutor, value: Any, path: Path) -> Any:
                if value is None or value is Undefined:
                    return None
                if isinstance(value, Exception):
                    raise value
                coerced = coerce(value)
                if coerced is None or coerced is Undefined:
                    return Executor.complete_leaf_value(leaf, value)  # raises graphql-core's error
                return coerced

            _PURITY[complete_leaf] = _pure_always
            return complete_leaf
        if _plain_object(return_type):
            object_type: Any = return_type
            return _object_completer(object_type, details, None)
        if is_list_type(return_type):
            return self._list_completer(return_type, parent_type, field_def, details, False)

        def complete_general(ex: PlannedExecutor, value: Any, path: Path) -> Any:
            info = ex.build_resolve_info(field_def, to_nodes(details), parent_type, path)
            return ex.complete_value(return_type, details, info, path, value, None)

        return complete_general


def _list_completer_of(
    planner: Planner,
    return_type: Any,
    parent_type: GraphQLObjectType,
    field_def: GraphQLField,
    details: FieldDetailsList,
    non_null: bool,
) -> Complete:
    """A list field's completer (``return_type`` the list, or the non-null list when ``non_null``)."""
    field_name = details[0].node.name.value
    list_type: GraphQLList[Any] = return_type.of_type if non_null else return_type
    item_type = list_type.of_type
    item = planner.completer(item_type, parent_type, field_def, details)

    def complete_list(ex: PlannedExecutor, value: Any, path: Path) -> Any:
        if value is None or value is Undefined:
            if non_null:
                raise _null_error(parent_type, field_name)
            return None
        if not isinstance(value, list | tuple):  # iterables, async iterables, errors: graphql-core's way
            info = ex.build_resolve_info(field_def, to_nodes(details), parent_type, path)
            completed = ex.complete_value(return_type, details, info, path, value, None)
            if non_null and completed is None:
                raise _null_error(parent_type, field_name)
            return completed
        return ex._complete_items(value, item_type, item, details, path)

    _PURITY[complete_list] = _PURITY.get(item, _pure_never)
    return complete_list


def _plain_object(return_type: Any) -> bool:
    """An object type whose values are checked (if at all) by Strawberry's own ``is_type_of``."""
    return is_object_type(return_type) and (
        return_type.is_type_of is None or _strawberry_is_type_of(return_type.is_type_of)
    )


#: Object completers, by completer: the type's class, whether its values may be cast (then Strawberry's
#: is_type_of decides), and whether the field is non-null; and the non-null ones' (parent, field name).
_OBJECTS: dict[Any, tuple[Any, bool, str]] = {}
_OBJECT_NULLS: dict[Any, tuple[Any, str]] = {}

#: How a completer answers "do your values read only attributes, down to their leaves?" for a request:
#: True, False, or None when it cannot tell yet (an object whose plan it has not made yet).
_PURITY: dict[Any, Callable[[Any], bool | None]] = {}


def _pure_always(ex: Any) -> bool:
    return True


def _pure_never(ex: Any) -> bool:
    return False


def _object_completer(
    object_type: GraphQLObjectType, details: FieldDetailsList, non_null: tuple[Any, str] | None
) -> Complete:
    """An object's fields from its own plan (the request finds which, and keeps it); ``non_null`` (the
    parent type and field name) for a non-null field, whose null is an error."""
    is_type_of = object_type.is_type_of
    definition = object_type.extensions.get(BACKREF) if object_type.extensions else None
    # Strawberry's is_type_of is an isinstance check after a look for a cast: an instance of the
    # type's own class that was never cast (no cast attribute) passes it, so it is skipped for those.
    origin = getattr(definition, "origin", None)
    castable = origin is None or hasattr(origin, TYPE_CAST_ATTRIBUTE)

    def complete_object(ex: PlannedExecutor, value: Any, path: Path) -> Any:
        if value is None or value is Undefined:
            if non_null is not None:
                raise _null_error(*non_null)
            return None
        if isinstance(value, Exception):
            raise value
        if (
            is_type_of is not None
            and (castable or type(value) is not origin or TYPE_CAST_ATTRIBUTE in value.__dict__)
            and not is_type_of(value, None)  # type: ignore[arg-type]
        ):
            raise invalid_return_type_error(object_type, value, details)
        state = ex._objects.get(complete_object)
        if state is None:
            grouped_field_set, defer_usages, _ = ex.collect_subfields(object_type, details)
            if defer_usages:  # incremental delivery: graphql-core's own path
                return ex.collect_and_execute_subfields(object_type, details, path, value, None)
            state = ex._objects[complete_object] = _Answers(ex.plan(object_type, grouped_field_set))
        return state.answer(ex, value, path)

    def purity(ex: Any) -> bool | None:
        state = ex._objects.get(complete_object)
        return ex._pure(state.plan) if state is not None else None

    _PURITY[complete_object] = purity
    _OBJECTS[complete_object] = (origin, castable or origin is None, "non-null" if non_null is not None else "nullable")
    if non_null is not None:
        _OBJECT_NULLS[complete_object] = non_null
    return complete_object


class _Answers:
    """A request's own for one object field: the plan its selection set runs, what it has answered."""

    __slots__ = ("memo", "plan", "pure")

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.memo: dict[int, tuple[Any, dict[str, Any]]] = {}
        self.pure: bool | None = None

    def answer(self, ex: Any, value: Any, path: Any) -> Any:
        """``value`` completed by the plan; the same object under the same field again (a profile fifty
        subscriptions share) gets the answer it gave, when its fields read only attributes (no resolver
        can tell the two places apart) and no error was recorded while it was completed."""
        known = self.memo.get(id(value))
        if known is not None and known[0] is value:
            return known[1]
        errors = ex._errors
        result = self.plan.run(ex, value, path)
        if type(result) is dict and ex._errors == errors:
            if self.pure is None:
                self.pure = ex._pure(self.plan)
            if self.pure:
                self.memo[id(value)] = (value, result)
        return result


#: Planners by schema (a schema built for a test goes with its planner).
_PLANNERS: weakref.WeakKeyDictionary[Any, Planner] = weakref.WeakKeyDictionary()


class PlannedExecutor(StrawberryGraphQLCoreExecutionContext):
    """graphql-core's executor, with selection sets run from plans (see the module docstring)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._local: dict[int, tuple[GroupedFieldSet, Plan]] = {}
        self._objects: dict[Any, _Answers] = {}
        self._pure_plans: dict[Plan, bool] = {}
        self._errors = 0
        self._awaiting = _awaiting(self.is_awaitable)
        strawberry_schema = getattr(self.schema, "_strawberry_schema", None)
        converter = getattr(strawberry_schema, "schema_converter", None)
        planning = (
            strawberry_schema is not None
            and not (self.middleware_manager and self.middleware_manager.middlewares)
            and not getattr(converter, "_exception_handler_specs", ())
        )
        self._info_class = strawberry_schema.config.info_class if strawberry_schema is not None else Info
        planner = _PLANNERS.get(self.schema)
        if planner is None or planner.planning != planning or planner.info_class is not self._info_class:
            planner = _PLANNERS[self.schema] = Planner(self.schema, planning, self._info_class)
        self._planner = planner

    def plan(self, parent_type: GraphQLObjectType, grouped_field_set: GroupedFieldSet) -> Plan:
        """The plan of a field set of this request (found once per field set and kept for the request,
        with the field set, so that its id stays its own)."""
        found = self._local.get(id(grouped_field_set))
        if found is not None and found[0] is grouped_field_set:
            return found[1]
        plan = self._planner.plan(parent_type, grouped_field_set)
        self._local[id(grouped_field_set)] = (grouped_field_set, plan)
        return plan

    def _pure(self, plan: Plan) -> bool | None:
        """Whether a plan reads only attributes, down to its leaves (None: not known yet)."""
        known = self._pure_plans.get(plan)
        if known is not None:
            return known
        verdict: bool | None = True
        for step in plan.steps:
            if step.kind in (LEAF, TYPENAME):
                continue
            if step.kind != ATTRIBUTE:
                verdict = False
                break
            found = _PURITY.get(step.complete, _pure_never)(self)
            if found is False:
                verdict = False
                break
            if found is None:
                verdict = None
        if verdict is not None:
            self._pure_plans[plan] = verdict
        return verdict

    def handle_field_error(self, *args: Any, **kwargs: Any) -> None:
        self._errors += 1
        super().handle_field_error(*args, **kwargs)

    # -- running -----------------------------------------------------------------------

    def execute_fields(
        self,
        parent_type: GraphQLObjectType,
        source_value: Any,
        path: Path | None,
        grouped_field_set: GroupedFieldSet,
        position_context: Any,
    ) -> Any:
        return self.plan(parent_type, grouped_field_set).run(self, source_value, path)

    def _field_error(self, raw_error: Exception, step: Step, parent_type: GraphQLObjectType, path: Path | None) -> None:
        """graphql-core's handling: a located error, raised on for a non-null field, else recorded."""
        assert step.return_type is not None
        self.handle_field_error(
            raw_error, step.return_type, step.field_details, Path(path, step.name, parent_type.name)
        )

    def _info_of(self, step: Step, parent_type: GraphQLObjectType, path: Path) -> Any:
        """The Strawberry ``Info`` a resolver asks for: its resolve info built when it is first read
        (most resolvers read only ``info.context``), or at once for an application's own Info class."""
        field_def = step.field_def
        assert field_def is not None
        field = field_def.extensions[BACKREF]
        if self._info_class is Info:
            return _PlannedInfo(self, step, parent_type, path)
        raw = self.build_resolve_info(field_def, to_nodes(step.field_details), parent_type, path)
        return self._info_class(_raw_info=raw, _field=field)

    async def _complete_later(self, step: Step, value: Awaitable[Any], path: Path) -> Any:
        """What a resolver's awaitable gives, completed; as ``Executor.complete_awaitable_value`` does."""
        assert step.complete is not None and step.return_type is not None
        try:
            completed = step.complete(self, await self.with_abort_signal(value), path)
            if self.is_awaitable(completed):
                completed = await completed
        except Exception as raw_error:
            self.handle_field_error(raw_error, step.return_type, step.field_details, path)
            completed = None
        return completed

    def _complete_items(
        self,
        values: list[Any] | tuple[Any, ...],
        item_type: GraphQLOutputType,
        complete_item: Complete,
        details: FieldDetailsList,
        path: Path,
    ) -> Any:
        """A list's items, each completed at its index; as ``Executor.complete_iterable_value`` does."""
        awaiting = self._awaiting
        never = _NEVER_AWAITABLE
        new_path = tuple.__new__
        completed: list[Any] = []
        pending: list[int] = []
        # Items of an object type, of its own class and never cast: completed here from the plan the
        # request has for them, as ``_object_completer`` does (after its first item has made it).
        spec = _OBJECTS.get(complete_item)
        origin = spec[0] if spec is not None and not spec[1] else None
        for index, value in enumerate(values):
            item_path = new_path(Path, (path, index, None))  # path.add_key(index), without its two calls
            if type(value) not in never and awaiting(value):
                completed.append(self._item_later(value, complete_item, item_type, details, item_path))
                pending.append(index)
                continue
            result: Any
            try:
                answers = self._objects.get(complete_item) if type(value) is origin else None
                if answers is not None and TYPE_CAST_ATTRIBUTE not in value.__dict__:
                    result = answers.answer(self, value, item_path)
                else:
                    result = complete_item(self, value, item_path)
            except Exception as raw_error:
                self.handle_field_error(raw_error, item_type, details, item_path)
                result = None
            if type(result) not in never and awaiting(result):
                result = self._guarded(result, item_type, details, item_path)
                pending.append(index)
            completed.append(result)
        if not pending:
            return completed

        async def gather_items() -> list[Any]:
            if len(pending) == 1:
                completed[pending[0]] = await completed[pending[0]]
            else:
                awaited = await gather_with_cancel(*(completed[i] for i in pending))
                for index, value in zip(pending, awaited, strict=True):
                    completed[index] = value
            return completed

        return gather_items()

    async def _item_later(
        self,
        value: Awaitable[Any],
        complete_item: Complete,
        item_type: GraphQLOutputType,
        details: FieldDetailsList,
        path: Path,
    ) -> Any:
        """A list item that is itself awaitable; as ``Executor.complete_awaitable_list_item_value`` does."""
        try:
            completed = complete_item(self, await self.with_abort_signal(value), path)
            if self.is_awaitable(completed):
                completed = await completed
        except Exception as raw_error:
            self.handle_field_error(raw_error, item_type, details, path)
            return None
        return completed

    async def _guarded(
        self, awaitable: Awaitable[Any], return_type: GraphQLOutputType, details: FieldDetailsList, path: Path
    ) -> Any:
        try:
            return await awaitable
        except Exception as raw_error:
            self.handle_field_error(raw_error, return_type, details, path)
            return None


# -- schema extensions' hooks ------------------------------------------------------------

#: Each extension class's hook for a stage: (whether it is async, its context manager factory), None
#: when the class has none, or absent when Strawberry's own lookup is needed (a plain method).
_HOOKS: dict[tuple[type, str], tuple[bool, Callable[..., Any]] | None] = {}


def _hook(manager: ExtensionContextManagerBase, extension: SchemaExtension) -> WrappedHook | None:
    """``get_hook`` with what it works out per extension class kept: Strawberry decorates every hook
    of every extension anew for every request (six extensions, four stages)."""
    key = (type(extension), manager.HOOK_NAME)
    if key not in _HOOKS:
        hook = getattr(type(extension), manager.HOOK_NAME)
        if hook is manager.default_hook:
            _HOOKS[key] = None
        elif inspect.isgeneratorfunction(hook):
            _HOOKS[key] = (False, contextlib.contextmanager(hook))
        elif inspect.isasyncgenfunction(hook):
            _HOOKS[key] = (True, contextlib.asynccontextmanager(hook))
        else:
            return ExtensionContextManagerBase.get_hook(manager, extension)
    found = _HOOKS[key]
    if found is None:
        return None
    is_async, factory = found
    return WrappedHook(extension=extension, hook=partial(factory, extension), is_async=is_async)


class _Operation(OperationContextManager):
    get_hook = _hook


class _Validation(ValidationContextManager):
    get_hook = _hook


class _Parsing(ParsingContextManager):
    get_hook = _hook


class _Executing(ExecutingContextManager):
    get_hook = _hook


class ExtensionsRunner(SchemaExtensionsRunner):
    """Strawberry's runner of schema extensions, with each extension class's hooks looked up once."""

    def operation(self) -> OperationContextManager:
        return _Operation(self.extensions)

    def validation(self) -> ValidationContextManager:
        return _Validation(self.extensions)

    def parsing(self) -> ParsingContextManager:
        return _Parsing(self.extensions)

    def executing(self) -> ExecutingContextManager:
        return _Executing(self.extensions)
