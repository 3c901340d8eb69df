"""The privacy registry classifies every table and column of the live schema, on both stores: a table
or column someone adds without saying what an erasure does with it fails here."""

from __future__ import annotations

import pytest

from omnisdk.store import open_store
from omnisdk.store._privacy import ACTIONS, REGISTRY, json_columns, live_schema


@pytest.fixture
def schema(store_url: str) -> dict[str, list[str]]:
    store = open_store(store_url)
    try:
        with store.transaction(immediate=False) as tx:
            return live_schema(tx)
    finally:
        store.close()


def test_every_table_of_the_live_schema_is_classified(schema: dict[str, list[str]]) -> None:
    assert len(schema) >= 20
    assert sorted(t for t in schema if t not in REGISTRY) == []


def test_every_column_of_the_live_schema_is_classified(schema: dict[str, list[str]]) -> None:
    unclassified = {t: sorted(set(columns) - set(REGISTRY[t].columns)) for t, columns in schema.items()
                    if t in REGISTRY and set(columns) - set(REGISTRY[t].columns)}
    stale = {t: sorted(set(REGISTRY[t].columns) - set(columns)) for t, columns in schema.items()
             if t in REGISTRY and set(REGISTRY[t].columns) - set(columns)}
    assert (unclassified, stale) == ({}, {})


def test_an_anonymised_table_changes_every_personal_column_and_keeps_its_key() -> None:
    for table, rule in REGISTRY.items():
        assert rule.forget in ("delete", "anonymise", "scan", "none"), table
        assert set(rule.key) <= set(rule.columns), table
        assert (rule.link is None) == (rule.forget in ("scan", "none")), table
        for column, column_rule in rule.columns.items():
            assert column_rule.action in ACTIONS, (table, column)
            assert column_rule.kind in ("personal", "pseudonymous", "aggregate"), (table, column)
            if rule.forget == "anonymise" and column_rule.kind == "personal":
                assert column_rule.action != "keep", f"{table}.{column} is personal and kept"


def test_json_columns_are_read_from_the_migrations() -> None:
    found = json_columns()
    assert {("touchpoints", "properties"), ("deliveries", "sent_content"), ("customers", "traits")} <= found
    assert ("touchpoints", "name") not in found
