"""The shared store suite: both databases, versioned migrations that keep data."""

from __future__ import annotations

import pytest

from omnisdk.store import migrations, open_store


def test_migrations_are_recorded_and_idempotent(store_url: str) -> None:
    store = open_store(store_url)
    try:
        assert store.schema_version() == migrations()[-1][0]
        assert store.migrate() == []
    finally:
        store.close()


def test_upgrading_an_old_schema_keeps_its_data(store_url: str) -> None:
    first_version, _, first_sql = migrations()[0]
    store = open_store(store_url, migrate=False)
    try:
        # Build the store as the first release left it, with data in it.
        with store.transaction() as tx:
            tx.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                       "applied_at DOUBLE PRECISION NOT NULL)")
            from omnisdk.store._base import _split

            for statement in _split(store.dialect.render(first_sql)):
                tx.execute(statement)
            tx.execute("INSERT INTO schema_migrations VALUES (?, 'core', 0)", (first_version,))
            tx.execute("INSERT INTO customers (id, traits, preferred_channels, created_at, updated_at) "
                       "VALUES ('c-old', '{\"vip\": true}', '[]', 1, 1)")
        assert store.schema_version() == first_version

        applied = store.migrate()

        assert applied == [v for v, _, _ in migrations()[1:]]
        with store.transaction() as tx:
            assert tx.one("SELECT id FROM customers") == ("c-old",)
    finally:
        store.close()


def test_a_failed_transaction_rolls_back(store_url: str) -> None:
    store = open_store(store_url)
    try:
        try:
            with store.transaction() as tx:
                tx.execute("INSERT INTO customers (id, traits, preferred_channels, created_at, updated_at) "
                           "VALUES ('c-x', '{}', '[]', 1, 1)")
                raise RuntimeError("boom")
        except RuntimeError:
            pass
        with store.transaction() as tx:
            assert tx.scalar("SELECT COUNT(*) FROM customers") == 0
    finally:
        store.close()


def test_loads_fast_paths_decode_as_json_loads_does() -> None:
    """"[]", "{}" and "null" skip the parser (each call a new object: callers may change what they get);
    other text is decoded without whitespace scans when nothing surrounds the value, as before otherwise."""
    from omnisdk.store import loads

    first, second = loads("[]"), loads("[]")
    first.append("sms")
    assert (first, second, loads("{}"), loads("null")) == (["sms"], [], {}, None)
    assert loads("{}") is not loads("{}")
    assert (loads(' {"a": [1, 2]}\n'), loads('"x"'), loads("1.5")) == ({"a": [1, 2]}, "x", 1.5)
    for bad in ("", "[1] [2]", "{", "nope"):
        with pytest.raises(ValueError):
            loads(bad)
    assert (loads(" [] "), loads(b'{"a": 1}'), loads('["sms"]'), loads(None), loads([1])) == ([], {"a": 1}, ["sms"],
                                                                                              None, [1])


def test_json_columns_round_trip(store_url: str) -> None:
    from omnisdk.store import dumps, loads

    store = open_store(store_url)
    try:
        with store.transaction() as tx:
            tx.execute("INSERT INTO customers (id, traits, preferred_channels, created_at, updated_at) "
                       "VALUES (?, ?, '[]', 1, 1)", ("c-j", dumps({"name": "Zoë", "n": 3})))
            raw = tx.scalar("SELECT traits FROM customers WHERE id = 'c-j'")
            value = tx.scalar(f"SELECT {store.dialect.json_text('traits', 'name')} FROM customers")
        assert loads(raw) == {"name": "Zoë", "n": 3}
        assert value == "Zoë"
    finally:
        store.close()


def test_the_store_counts_the_statements_and_transactions_it_runs(store_url: str) -> None:
    """What the benchmarks report per message and per run: every statement (one per row of an
    executemany) and every transaction, committed or rolled back."""
    store = open_store(store_url)
    try:
        store.migrate()
        before = (store.activity.statements, store.activity.transactions)
        with store.transaction() as tx:
            tx.execute("CREATE TABLE counted (n INTEGER)")
            tx.executemany("INSERT INTO counted (n) VALUES (?)", [(1,), (2,), (3,)])
            assert tx.scalar("SELECT COUNT(*) FROM counted") == 3
            tx.query("SELECT n FROM counted")
        with pytest.raises(RuntimeError), store.transaction() as tx:
            tx.execute("INSERT INTO counted (n) VALUES (4)")
            raise RuntimeError("rolled back")
        assert (store.activity.statements - before[0], store.activity.transactions - before[1]) == (7, 2)
    finally:
        store.close()
