"""The Schema as rebill serves and prints it.

Two things on top of Strawberry's: the SDL begins with an explicit
``schema { query: Query mutation: Mutation }`` block, because SDL readers
(graphql-js, graphql-core, code generators, schema registries) otherwise take
the type named ``Subscription`` for the subscription root; and every type,
field, argument and enum value without a description in code gets the one
``descriptions.py`` keeps for it, so the SDL and introspection document all of
them.
"""

from __future__ import annotations

from typing import Any

import strawberry
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
)

from rebill.schema.descriptions import describe
from rebill.schema.execution import ExtensionsRunner, PlannedExecutor


class RebillSchema(strawberry.Schema):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("execution_context_class", PlannedExecutor)
        super().__init__(*args, **kwargs)
        fill_descriptions(self._schema)

    def create_extensions_runner(self, execution_context: Any, extensions: list[Any]) -> ExtensionsRunner:
        return ExtensionsRunner(execution_context=execution_context, extensions=extensions)

    def as_str(self) -> str:
        roots = ["  query: Query"]
        if self._schema.mutation_type is not None:
            roots.append(f"  mutation: {self._schema.mutation_type.name}")
        if self._schema.subscription_type is not None:
            roots.append(f"  subscription: {self._schema.subscription_type.name}")
        block = "schema {\n" + "\n".join(roots) + "\n}"
        printed = super().as_str()
        return printed if printed.startswith("schema ") else f"{block}\n\n{printed}"

    __str__ = as_str


def fill_descriptions(schema: GraphQLSchema) -> None:
    """Give every element without a description in code the one the catalogue has (if any)."""
    for name, type_ in schema.type_map.items():
        if name.startswith("__"):
            continue
        if not type_.description:
            type_.description = describe(name)
        if isinstance(type_, GraphQLObjectType | GraphQLInterfaceType | GraphQLInputObjectType):
            for field_name, field in type_.fields.items():
                if not field.description:
                    field.description = describe(name, field_name)
                for arg_name, arg in getattr(field, "args", {}).items():
                    if not arg.description:
                        arg.description = describe(name, field_name, arg_name)
        elif isinstance(type_, GraphQLEnumType):
            for value_name, value in type_.values.items():
                if not value.description:
                    value.description = describe(name, value_name)
