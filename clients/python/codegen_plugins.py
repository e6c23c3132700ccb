"""An ariadne-codegen plugin: rebill's Money amounts as ``Decimal`` in the generated client.

``Money.amount`` is a decimal string in GraphQL (never a float). In results,
every fragment on ``Money`` reads it as a ``Decimal`` (pydantic parses
``"62.96"`` exactly); in inputs, ``MoneyInput.amount`` takes a ``Decimal`` and
sends it as a plain decimal string (``scalars.amount_to_string``).
"""

from __future__ import annotations

import ast

from ariadne_codegen.plugins.base import Plugin
from graphql import FragmentDefinitionNode, GraphQLInputField


def _import(module: ast.Module, source: str, name: str, level: int = 0) -> None:
    module.body.insert(0, ast.ImportFrom(module=source, names=[ast.alias(name=name)], level=level))


class MoneyAsDecimal(Plugin):
    def generate_fragments_module(
        self, module: ast.Module, fragments_definitions: dict[str, FragmentDefinitionNode]
    ) -> ast.Module:
        money = {name for name, f in fragments_definitions.items() if f.type_condition.name.value == "Money"}
        changed = False
        for node in module.body:
            if isinstance(node, ast.ClassDef) and node.name in money:
                for field in node.body:
                    if isinstance(field, ast.AnnAssign) and isinstance(field.target, ast.Name):
                        if field.target.id == "amount":
                            field.annotation = ast.Name(id="Decimal")
                            changed = True
        if changed:
            _import(module, "decimal", "Decimal")
        return module

    def generate_input_field(
        self, field_implementation: ast.AnnAssign, input_field: GraphQLInputField, field_name: str
    ) -> ast.AnnAssign:
        if field_name == "amount" and getattr(input_field, "_rebill_money", False):
            field_implementation.annotation = ast.parse(
                "Annotated[Decimal, PlainSerializer(amount_to_string)]", mode="eval"
            ).body
        return field_implementation

    def generate_input_class(self, class_def, input_type):  # type: ignore[no-untyped-def]
        return class_def

    def process_schema(self, schema):  # type: ignore[no-untyped-def]
        money_input = schema.type_map.get("MoneyInput")
        if money_input is not None:
            money_input.fields["amount"]._rebill_money = True
        return schema

    def generate_inputs_module(self, module: ast.Module) -> ast.Module:
        _import(module, "scalars", "amount_to_string", level=1)
        _import(module, "pydantic", "PlainSerializer")
        _import(module, "typing", "Annotated")
        _import(module, "decimal", "Decimal")
        return module
