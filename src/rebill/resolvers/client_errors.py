"""Client mistakes are clear ``BAD_USER_INPUT`` errors; an unreachable database is a 503; each logs one line.

Three jobs at the GraphQL boundary, each kept out of the resolvers:

- before execution, every value the client sent (variables and literals in
  the document) is checked for what PostgreSQL cannot hold or what no caller
  needs: NUL characters, lists over ``MAX_LIST_ITEMS``, strings over
  ``MAX_STRING_CHARS``, non-finite numbers. The error names the field;
- after execution, errors are sorted: the client's (coercion of variables and
  literals, rebill's own refusals) are shown with ``BAD_USER_INPUT``; an
  unreachable database becomes ``DATABASE_UNAVAILABLE`` with HTTP 503;
  everything else stays masked as a server fault;
- the log gets one line per client error, and a traceback only for faults.
"""

from __future__ import annotations

import logging
import math
from collections import OrderedDict
from collections.abc import Iterator
from typing import Any

from graphql import (
    ArgumentNode,
    DocumentNode,
    GraphQLError,
    ListValueNode,
    NullValueNode,
    ObjectFieldNode,
    ObjectValueNode,
    StringValueNode,
    VariableNode,
    Visitor,
    visit,
)
from strawberry.extensions import SchemaExtension

from rebill.db.engine import is_database_outage
from rebill.domain.errors import RebillError
from rebill.resolvers.payload_scope import payload_problem

#: Items in any one list the client sends (``ids`` in filters among them).
MAX_LIST_ITEMS = 1000
#: Characters in any one string the client sends.
MAX_STRING_CHARS = 65_536

DATABASE_UNAVAILABLE = "the database is unavailable; try again shortly"
#: Input fields of this name hold a JSON object (or null), whatever input type they belong to.
METADATA = "metadata"
OUT_OF_RANGE = "a value in the request is out of range or invalid for rebill"

logger = logging.getLogger(__name__)


class InputError(GraphQLError):
    """A value the client sent that rebill refuses before running anything."""

    def __init__(self, message: str, field: list[str]) -> None:
        super().__init__(message, extensions={"code": "BAD_USER_INPUT", "field": field})


def _value_problem(value: Any, path: list[str]) -> InputError | None:
    """The first unacceptable value inside a decoded JSON value, walked without recursion."""
    stack: list[tuple[Any, list[str], bool]] = [(value, path, False)]
    while stack:
        item, where, inside_json = stack.pop()
        if not inside_json and where[-1:] == [METADATA] and len(where) > 1:
            if item is not None and not isinstance(item, dict):
                return InputError(f"{'.'.join(where)}: metadata must be a JSON object", where)
            inside_json = True
        if isinstance(item, str):
            problem = _string_problem(item)
            if problem:
                return InputError(f"{'.'.join(where)}: {problem}", where)
        elif isinstance(item, float) and not math.isfinite(item):
            return InputError(f"{'.'.join(where)}: numbers must be finite", where)
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and "\x00" in key:
                    return InputError(f"{'.'.join(where)}: a key contains a NUL character", where)
                stack.append((child, [*where, str(key)], inside_json))
        elif isinstance(item, list):
            if len(item) > MAX_LIST_ITEMS:
                return InputError(
                    f"{'.'.join(where)}: at most {MAX_LIST_ITEMS} items per list (got {len(item)})", where
                )
            stack.extend((child, [*where, str(i)], inside_json) for i, child in enumerate(item))
    return None


def _string_problem(text: str) -> str | None:
    if "\x00" in text:
        return "text may not contain NUL characters"
    if len(text) > MAX_STRING_CHARS:
        return f"at most {MAX_STRING_CHARS} characters per string (got {len(text)})"
    return None


class _Literals(Visitor):
    """Finds the first unacceptable literal in a document, naming its argument and fields."""

    def __init__(self, variables: dict[str, Any]) -> None:
        super().__init__()
        self.problem: InputError | None = None
        self.variables = variables

    @staticmethod
    def _where(parent: Any, ancestors: Any) -> list[str]:
        chain = [*ancestors, parent]
        return [n.name.value for n in chain if isinstance(n, ArgumentNode | ObjectFieldNode)]

    def enter_string_value(self, node: StringValueNode, _key: Any, parent: Any, _path: Any, ancestors: Any) -> None:
        problem = _string_problem(node.value)
        if problem and self.problem is None:
            where = self._where(parent, ancestors)
            self.problem = InputError(f"{'.'.join(where) or 'a string'}: {problem}", where)

    def enter_object_field(self, node: ObjectFieldNode, *_args: Any) -> None:
        if node.name.value != METADATA or self.problem is not None:
            return
        value = node.value
        if isinstance(value, VariableNode):
            given = self.variables.get(value.name.value)
            if given is not None and not isinstance(given, dict):
                self.problem = InputError(f"${value.name.value}: metadata must be a JSON object", [METADATA])
        elif not isinstance(value, ObjectValueNode | NullValueNode):
            self.problem = InputError(f"{METADATA}: metadata must be a JSON object", [METADATA])

    def enter_list_value(self, node: ListValueNode, _key: Any, parent: Any, _path: Any, ancestors: Any) -> None:
        if len(node.values) > MAX_LIST_ITEMS and self.problem is None:
            where = self._where(parent, ancestors)
            self.problem = InputError(
                f"{'.'.join(where) or 'a list'}: at most {MAX_LIST_ITEMS} items per list (got {len(node.values)})",
                where,
            )


class _Reads(Visitor):
    """Whether a document's literals are judged with its variables (a ``metadata`` field given by one)."""

    def __init__(self) -> None:
        super().__init__()
        self.found = False

    def enter_object_field(self, node: ObjectFieldNode, *_args: Any) -> None:
        if node.name.value == METADATA and isinstance(node.value, VariableNode):
            self.found = True


#: The verdict on a document's literals when it needs no variables, by document (the parser cache hands
#: back the same document for the same text, so a dashboard's query is walked once).
_VERDICTS: OrderedDict[int, tuple[DocumentNode, InputError | None]] = OrderedDict()
_VERDICTS_SIZE = 512


def _literal_problem(document: DocumentNode, variables: dict[str, Any]) -> InputError | None:
    cached = _VERDICTS.get(id(document))
    if cached is not None and cached[0] is document:
        return cached[1]
    reads = _Reads()
    visit(document, reads)
    finder = _Literals(variables)
    visit(document, finder)
    if not reads.found:
        _VERDICTS[id(document)] = (document, finder.problem)
        while len(_VERDICTS) > _VERDICTS_SIZE:
            _VERDICTS.popitem(last=False)
    return finder.problem


def input_problem(document: DocumentNode | None, variables: dict[str, Any] | None) -> InputError | None:
    """The first value in the request that rebill refuses before execution, or ``None``."""
    for name, value in (variables or {}).items():
        problem = _value_problem(value, [f"${name}"])
        if problem is not None:
            return problem
    if document is not None:
        return _literal_problem(document, variables or {})
    return None


def _is_client_error(error: GraphQLError) -> bool:
    original = error.original_error
    if original is None or isinstance(original, GraphQLError | RebillError):
        return True
    # A scalar that cannot parse what the client sent (a date like 2026-02-30) fails before any resolver runs.
    return error.path is None and isinstance(original, ValueError | TypeError | OverflowError)


def _is_data_error(error: GraphQLError) -> bool:
    """PostgreSQL refused a value (out of range, invalid text): the client's value, not a fault."""
    original: BaseException | None = error.original_error
    seen = 0
    while original is not None and seen < 5:
        if type(original).__name__ in {
            "DataError",
            "NumericValueOutOfRangeError",
            "CharacterNotInRepertoireError",
            "UntranslatableCharacterError",
            "StringDataRightTruncationError",
            "InvalidDatetimeFormatError",
            "DatetimeFieldOverflowError",
        }:
            return True
        original = getattr(original, "orig", None) or original.__cause__
        seen += 1
    return False


def _shown(error: GraphQLError, message: str, code: str) -> GraphQLError:
    return GraphQLError(
        message,
        nodes=error.nodes,
        source=error.source,
        positions=error.positions,
        path=error.path,
        extensions={**(error.extensions or {}), "code": code},
    )


def _coded(error: GraphQLError, code: str) -> GraphQLError:
    if "code" not in (error.extensions or {}):
        error.extensions = {**(error.extensions or {}), "code": code}
    return error


class ClientErrors(SchemaExtension):
    """Refuses unacceptable values before execution; sorts errors after it (see the module docstring)."""

    def on_execute(self) -> Iterator[None]:
        context = self.execution_context
        problem = input_problem(context.graphql_document, context.variables)
        if problem is not None:
            raise problem
        actor = getattr(context.context, "actor", None)
        if actor is not None and not actor.has("read") and "customer" not in actor.scopes and context.graphql_document:
            refused = payload_problem(context.schema._schema, context.graphql_document, context.operation_name)
            if refused is not None:
                raise refused
        yield

    def on_operation(self) -> Iterator[None]:
        yield
        result = self.execution_context.result
        errors = getattr(result, "errors", None)
        if not errors:
            return
        shaped: list[GraphQLError] = []
        outage = False
        for error in errors:
            if error.original_error is not None and is_database_outage(error.original_error):
                outage = True
                shaped.append(_shown(error, DATABASE_UNAVAILABLE, "DATABASE_UNAVAILABLE"))
            elif _is_data_error(error):
                shaped.append(
                    _shown(error, "a value in the request is out of range or invalid for rebill", "BAD_USER_INPUT")
                )
            elif _is_client_error(error):
                code = (error.extensions or {}).get("code") or "BAD_USER_INPUT"
                original = error.original_error
                message = original.message if isinstance(original, RebillError) else error.message
                # A new error without the original, so that masking leaves it as it is.
                shaped.append(_shown(error, message, code) if original is not None else _coded(error, code))
            else:
                shaped.append(error)
        result.errors = shaped  # type: ignore[union-attr]
        if outage:
            response = getattr(self.execution_context.context, "response", None)
            if response is not None:
                response.status_code = 503


class OneLinePerClientError(logging.Filter):
    """Client errors log one line without a traceback; server faults keep theirs."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.msg
        if isinstance(error, GraphQLError) and (
            _is_client_error(error)
            or _is_data_error(error)
            or (error.original_error is not None and is_database_outage(error.original_error))
        ):
            code = (error.extensions or {}).get("code") or "BAD_USER_INPUT"
            record.msg = "client error %s: %s"
            record.args = (code, " ".join(error.message.split())[:300])
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def client_error_extensions() -> list[Any]:
    """The extension factory; also makes strawberry's error log one line per client error."""
    target = logging.getLogger("strawberry.execution")
    if not any(isinstance(f, OneLinePerClientError) for f in target.filters):
        target.addFilter(OneLinePerClientError())
    return [ClientErrors]
