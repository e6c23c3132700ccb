"""Bounded work for every request's document, whatever it contains.

A GraphQL document of a few hundred bytes can describe an exponential amount
of work: fragments that each spread the previous one twice expand to 2ⁿ
fields. Every limit here is measured on the document as written, with each
fragment measured once and its figures reused wherever it is spread, so the
checks themselves cost time linear in the document's size:

1. before parsing, one pass of the lexer counts tokens and bracket nesting
   (the parser is recursive; a thousand nested brackets must not reach it);
2. before validation, depth, aliases, the size of the expanded selection and
   the repeats of one response name in a selection set are measured;
3. only a document within those bounds is validated by graphql-core, in a
   worker thread so that the event loop keeps serving other clients.
"""

from __future__ import annotations

import asyncio
import re
from collections import Counter, OrderedDict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    InlineFragmentNode,
    OperationDefinitionNode,
    SelectionSetNode,
    Source,
    TokenKind,
    validate,
)
from graphql.language.lexer import Lexer
from strawberry.extensions import SchemaExtension
from strawberry.schema.validation_rules.maybe_null import MaybeNullValidationRule
from strawberry.schema.validation_rules.one_of import OneOfInputValidationRule

from rebill.config import Settings

#: Brackets (``{``, ``[``, ``(``) open at once anywhere in a document.
MAX_NESTING = 48
#: How many times one response name may occur in one selection set, fragments included.
MAX_REPEATS = 50
#: Fragment spreads and selection sets open at once while measuring (keeps the walk off the recursion limit).
MAX_WALK = 200

_OPEN = {TokenKind.BRACE_L, TokenKind.BRACKET_L, TokenKind.PAREN_L}
_CLOSE = {TokenKind.BRACE_R, TokenKind.BRACKET_R, TokenKind.PAREN_R}
_SUGGESTION = re.compile(r"\s*Did you mean [^?]*\?")


class LimitError(GraphQLError):
    """A document refused for its size or shape, before any of it runs."""

    def __init__(self, message: str) -> None:
        super().__init__(message, extensions={"code": "BAD_USER_INPUT"})


@lru_cache(maxsize=1024)
def lexical_problem(query: str, max_tokens: int, max_nesting: int = MAX_NESTING) -> str | None:
    """Why the raw text is too big or too deeply nested to parse, or ``None``.

    A syntax error is left for the parser to report with its position.
    """
    lexer = Lexer(Source(query))
    tokens = 0
    nesting = 0
    try:
        token = lexer.advance()
        while token.kind != TokenKind.EOF:
            tokens += 1
            if tokens > max_tokens:
                return f"the document has more than {max_tokens} tokens (the token limit)"
            if token.kind in _OPEN:
                nesting += 1
                if nesting > max_nesting:
                    return f"the document nests brackets more than {max_nesting} deep"
            elif token.kind in _CLOSE:
                nesting -= 1
            token = lexer.advance()
    except GraphQLError:
        return None
    return None


@dataclass
class Shape:
    """What a selection set expands to: its depth, its aliases, its fields, its response names."""

    depth: int = 0
    aliases: int = 0
    fields: int = 0
    names: Counter[str] = field(default_factory=Counter)


class _TooDeep(Exception):
    pass


class _Measure:
    """Measures a document with every fragment measured once (cycles count as empty)."""

    def __init__(self, document: DocumentNode, max_repeats: int) -> None:
        self.fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
        self.memo: dict[str, Shape] = {}
        self.open: set[str] = set()
        self.walk = 0
        self.max_repeats = max_repeats
        self.worst_repeat = 0
        self.repeated = ""

    def selection_set(self, node: SelectionSetNode | None) -> Shape:
        shape = Shape()
        if node is None:
            return shape
        self.walk += 1
        if self.walk > MAX_WALK:
            raise _TooDeep
        for selection in node.selections:
            if isinstance(selection, FieldNode):
                name = selection.name.value
                shape.fields += 1
                shape.aliases += 1 if selection.alias else 0
                shape.names[(selection.alias or selection.name).value] += 1
                if selection.selection_set is not None:
                    inner = self.selection_set(selection.selection_set)
                    shape.fields += inner.fields
                    shape.aliases += inner.aliases
                    if not name.startswith("__"):
                        shape.depth = max(shape.depth, 1 + inner.depth)
            elif isinstance(selection, InlineFragmentNode):
                self._merge(shape, self.selection_set(selection.selection_set))
            elif isinstance(selection, FragmentSpreadNode):
                # Counted at every spread, as a naive walker would expand it: a document whose
                # fragments double at each level is refused here, before anything else walks it.
                self._merge(shape, self.fragment(selection.name.value))
        self.walk -= 1
        if shape.names:
            name, count = shape.names.most_common(1)[0]
            if count > self.worst_repeat:
                self.worst_repeat, self.repeated = count, name
        return shape

    def fragment(self, name: str) -> Shape:
        if name in self.memo:
            return self.memo[name]
        definition = self.fragments.get(name)
        if definition is None or name in self.open:
            return Shape()  # unknown fragments and cycles are validation errors of their own
        self.open.add(name)
        shape = self.selection_set(definition.selection_set)
        self.open.discard(name)
        self.memo[name] = shape
        return shape

    @staticmethod
    def _merge(into: Shape, part: Shape) -> None:
        into.depth = max(into.depth, part.depth)
        into.aliases += part.aliases
        into.fields += part.fields
        into.names.update(part.names)


def shape_problems(document: DocumentNode, settings: Settings) -> list[GraphQLError]:
    """The limits a document exceeds, measured without expanding any fragment twice."""
    measure = _Measure(document, MAX_REPEATS)
    problems: list[GraphQLError] = []
    try:
        for definition in document.definitions:
            if not isinstance(definition, OperationDefinitionNode):
                continue
            shape = measure.selection_set(definition.selection_set)
            name = definition.name.value if definition.name else "anonymous"
            if shape.depth > settings.max_query_depth:
                problems.append(LimitError(f"'{name}' exceeds maximum operation depth of {settings.max_query_depth}"))
            if shape.aliases > settings.max_aliases:
                problems.append(
                    LimitError(f"'{name}' has too many aliases ({shape.aliases}; max: {settings.max_aliases})")
                )
            if shape.fields > settings.max_selections:
                problems.append(
                    LimitError(
                        f"'{name}' selects too many fields once its fragments are expanded "
                        f"({shape.fields}; max: {settings.max_selections})"
                    )
                )
        for definition in document.definitions:  # fragments nobody spreads are still validated
            if isinstance(definition, FragmentDefinitionNode):
                measure.fragment(definition.name.value)
    except _TooDeep:
        return [LimitError(f"the document nests selections and fragments more than {MAX_WALK} deep")]
    if measure.worst_repeat > MAX_REPEATS:
        problems.append(
            LimitError(
                f"'{measure.repeated}' is selected {measure.worst_repeat} times in one selection set "
                f"(max: {MAX_REPEATS}); alias the fields or merge them"
            )
        )
    return problems


class ValidationResults:
    """Validation errors by document text, shared by every request of one schema."""

    def __init__(self, maxsize: int = 512) -> None:
        self.maxsize = maxsize
        self.entries: OrderedDict[str, list[GraphQLError]] = OrderedDict()

    def get(self, query: str) -> list[GraphQLError] | None:
        errors = self.entries.get(query)
        if errors is not None:
            self.entries.move_to_end(query)
        return errors

    def put(self, query: str, errors: list[GraphQLError]) -> None:
        self.entries[query] = errors
        self.entries.move_to_end(query)
        while len(self.entries) > self.maxsize:
            self.entries.popitem(last=False)


class RequestLimits(SchemaExtension):
    """Bounds parsing and validation; with introspection off, errors suggest no names."""

    def __init__(self, settings: Settings, results: ValidationResults) -> None:
        self.settings = settings
        self.results = results

    def on_operation(self) -> Iterator[None]:
        self.execution_context.parse_options["max_tokens"] = self.settings.max_tokens
        yield
        if not self.settings.introspection:
            result = self.execution_context.result
            for error in getattr(result, "errors", None) or []:
                error.message = _SUGGESTION.sub("", error.message)

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        if context.graphql_document is None and context.query:
            problem = lexical_problem(context.query, self.settings.max_tokens)
            if problem is not None:
                raise LimitError(problem)
        yield

    async def on_validate(self) -> AsyncIterator[None]:
        context = self.execution_context
        document = context.graphql_document
        if document is None or context.pre_execution_errors is not None:
            yield
            return
        query = context.query or ""
        errors = self.results.get(query) if query else None
        if errors is None:
            errors = shape_problems(document, self.settings)
            if not errors:
                rules = (*context.validation_rules, MaybeNullValidationRule, OneOfInputValidationRule)
                errors = await asyncio.to_thread(
                    validate,
                    context.schema._schema,
                    document,
                    rules,
                    hide_suggestions=not self.settings.introspection,
                )
            if query:
                self.results.put(query, errors)
        context.pre_execution_errors = list(errors)
        yield


def limit_extensions(settings: Settings) -> list[Any]:
    """The schema extension factories that bound every request's document."""
    results = ValidationResults()
    return [lambda: RequestLimits(settings, results)]
