"""The schema of record: an explicit schema block, and a description on everything it declares."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from graphql import (
    GraphQLEnumType,
    GraphQLInputObjectType,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    build_schema,
)

from rebill.config import Settings
from rebill.schema import build_full_schema

SDL = Path(__file__).resolve().parents[2] / "schema.graphql"


def undocumented(schema: GraphQLSchema) -> list[str]:
    """Every type, field, argument and enum value without a description."""
    missing = []
    for name, type_ in schema.type_map.items():
        if name.startswith("__") or name in {"String", "Int", "Float", "Boolean", "ID"}:
            continue
        if not type_.description:
            missing.append(name)
        if isinstance(type_, GraphQLObjectType | GraphQLInterfaceType | GraphQLInputObjectType):
            for field_name, field in type_.fields.items():
                if not field.description:
                    missing.append(f"{name}.{field_name}")
                for arg_name, arg in getattr(field, "args", {}).items():
                    if not arg.description:
                        missing.append(f"{name}.{field_name}({arg_name})")
        elif isinstance(type_, GraphQLEnumType):
            missing += [f"{name}.{value}" for value, v in type_.values.items() if not v.description]
    return missing


def test_the_sdl_begins_with_the_schema_block_so_readers_find_the_roots():
    printed = build_full_schema(Settings()).as_str()
    assert printed.startswith("schema {\n  query: Query\n  mutation: Mutation\n}\n")
    read = build_schema(printed)
    assert read.query_type is not None and read.query_type.name == "Query"
    assert read.mutation_type is not None and read.mutation_type.name == "Mutation"
    assert read.subscription_type is None, "the Subscription type is an object type, not the subscription root"


def test_everything_the_served_schema_declares_has_a_description():
    missing = undocumented(build_full_schema(Settings())._schema)
    assert missing == [], f"{len(missing)} without a description (add one in code or in schema/descriptions.py)"


def test_everything_in_schema_graphql_has_a_description():
    assert undocumented(build_schema(SDL.read_text())) == []


def test_introspection_shows_the_descriptions():
    from graphql import get_introspection_query, graphql_sync

    result = graphql_sync(build_full_schema(Settings())._schema, get_introspection_query(descriptions=True))
    assert result.errors is None
    types = {t["name"]: t for t in result.data["__schema"]["types"]}  # type: ignore[index]
    assert types["Subscription"]["description"]
    status = {v["name"]: v["description"] for v in types["SubscriptionStatus"]["enumValues"]}
    assert all(status.values()), status


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("npx") is None, reason="needs node and npx")
def test_graphql_schema_linter_finds_no_missing_description(tmp_path):
    """The linter partners run, with its description rules, on the committed SDL."""
    rules = "types-have-descriptions,fields-have-descriptions,arguments-have-descriptions,enum-values-have-descriptions"
    args = ["npx", "--yes", "graphql-schema-linter@3", "--format", "json", "--rules", rules, str(SDL)]
    done = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    if done.returncode != 0 and not done.stdout.strip().startswith("{"):
        pytest.skip(f"graphql-schema-linter did not run: {done.stderr[-500:]}")
    report = json.loads(done.stdout)
    assert report["errors"] == [], report["errors"][:5]
