"""What a mutation's payload shows obeys the key's ``read`` scope, like any query.

A key without ``read`` (a write-only integration) may select, in a
mutation's payload, its ``userErrors``, its scalar fields (``dryRun``…) and
the ``id`` of each object it returns, so that it can refer to what it created
or changed. Anything more (``subscription { customer { email } }``) is
refused before the mutation runs, so a refused request changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator

from graphql import (
    DocumentNode,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    OperationDefinitionNode,
    OperationType,
    SelectionSetNode,
    get_named_type,
    is_leaf_type,
)

#: What a key without ``read`` may select on an object a mutation returns.
IDENTIFYING = frozenset({"id", "__typename"})
#: Payload fields that are about the request, not about stored data.
ABOUT_THE_REQUEST = frozenset({"userErrors", "__typename"})
#: Objects that the scope calling the mutation reads anyway (``bulkRun`` needs ``bulk``, not ``read``).
OWN_SCOPE_TYPES = frozenset({"BulkRun", "BulkRunItem", "BulkPreview"})


def _fields(
    selection_set: SelectionSetNode | None, fragments: dict[str, FragmentDefinitionNode], seen: set[str] | None = None
) -> Iterator[FieldNode]:
    """The fields of a selection set, with its fragments expanded (each once)."""
    if selection_set is None:
        return
    seen = set() if seen is None else seen
    for selection in selection_set.selections:
        if isinstance(selection, FieldNode):
            yield selection
        elif isinstance(selection, InlineFragmentNode):
            yield from _fields(selection.selection_set, fragments, seen)
        elif isinstance(selection, FragmentSpreadNode) and selection.name.value not in seen:
            seen.add(selection.name.value)
            fragment = fragments.get(selection.name.value)
            if fragment is not None:
                yield from _fields(fragment.selection_set, fragments, seen)


def _operation(document: DocumentNode, name: str | None) -> OperationDefinitionNode | None:
    operations = [d for d in document.definitions if isinstance(d, OperationDefinitionNode)]
    if name is None:
        return operations[0] if len(operations) == 1 else None
    return next((o for o in operations if o.name and o.name.value == name), None)


def payload_problem(schema: GraphQLSchema, document: DocumentNode, operation_name: str | None) -> GraphQLError | None:
    """Why a mutation's selection reads more than a key without ``read`` may see, or ``None``."""
    operation = _operation(document, operation_name)
    mutation_type = schema.mutation_type
    if operation is None or operation.operation != OperationType.MUTATION or mutation_type is None:
        return None
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    for mutation in _fields(operation.selection_set, fragments):
        definition = mutation_type.fields.get(mutation.name.value)
        if definition is None:
            continue
        payload = get_named_type(definition.type)
        if not isinstance(payload, GraphQLObjectType):
            continue
        for field in _fields(mutation.selection_set, fragments):
            name = field.name.value
            field_def = payload.fields.get(name)
            if name in ABOUT_THE_REQUEST or field_def is None or is_leaf_type(get_named_type(field_def.type)):
                continue
            target = get_named_type(field_def.type)
            if target.name in OWN_SCOPE_TYPES:
                continue
            allowed = isinstance(target, GraphQLObjectType | GraphQLInterfaceType)
            for inner in _fields(field.selection_set, fragments):
                if not allowed or inner.name.value not in IDENTIFYING:
                    where = f"{mutation.name.value}.{name}.{inner.name.value}"
                    return GraphQLError(
                        f"this API key lacks the 'read' scope: a mutation's payload shows it ids and userErrors"
                        f" only, not {where}",
                        nodes=[inner],
                        extensions={"code": "FORBIDDEN"},
                    )
    return None
