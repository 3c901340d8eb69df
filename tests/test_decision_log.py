"""The decision log as append-only rows: the JSON logs stored before migration 0014 move into rows
(nothing lost, in order), and a log an older worker still writes as JSON is read in front of the rows."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from omnisdk import Omni, VirtualClock
from omnisdk.store import SQLStore, dumps, migrations, open_store
from omnisdk.store._base import _split

OLD_LOG = [
    {"at": 100.0, "action": "defer", "channel": "sms", "reason": "quiet hours until 08:00", "until": 200.0,
     "checks": [{"policy": "quiet_hours", "channel": "sms", "passed": False, "detail": "21:00-08:00"}]},
    {"at": 200.0, "action": "send", "channel": "sms", "reason": "send on sms", "until": None, "checks": []},
    {"at": 201.0, "action": "sent", "channel": "sms", "reason": "accepted by twilio"},
]


def insert_delivery(store: SQLStore, did: str, log: object, *, status: str = "sent") -> None:
    with store.transaction() as tx:
        tx.execute(
            "INSERT INTO deliveries (id, idempotency_key, customer_id, template, channels, purpose, data, status, "
            "due_at, decisions, created_at, updated_at) VALUES (?, ?, 'c-1', 'hello', '[\"sms\"]', 'marketing', "
            "'{}', ?, 1, ?, 1, 300)",
            (did, f"key-{did}", status, dumps(log)),
        )


@pytest.fixture
def old_store(store_url: str) -> Iterator[SQLStore]:
    """A store as the release before migration 0014 left it."""
    store = open_store(store_url, migrate=False)
    with store.transaction() as tx:
        tx.execute("CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
                   "applied_at DOUBLE PRECISION NOT NULL)")
        for version, name, sql in migrations():
            if version >= 14:
                break
            for statement in _split(store.dialect.render(sql)):
                tx.execute(statement)
            tx.execute("INSERT INTO schema_migrations VALUES (?, ?, 0)", (version, name))
    yield store
    store.close()


def test_the_migration_moves_every_json_log_into_rows_in_order(old_store: SQLStore, store_url: str,
                                                              clock: VirtualClock) -> None:
    insert_delivery(old_store, "dlv-1", OLD_LOG)
    insert_delivery(old_store, "dlv-2", [], status="queued")
    insert_delivery(old_store, "dlv-3", [{"action": "skip", "reason": "no consent"}, "junk"], status="skipped")

    assert 14 in old_store.migrate()

    with old_store.transaction() as tx:
        rows = tx.query("SELECT delivery_id, at, actor, outcome, channel, reason, until FROM delivery_decisions "
                        "ORDER BY seq")
        logs = dict(tx.query("SELECT id, decisions FROM deliveries"))
    assert rows == [
        ("dlv-1", 100.0, "dispatcher", "defer", "sms", "quiet hours until 08:00", 200.0),
        ("dlv-1", 200.0, "dispatcher", "send", "sms", "send on sms", None),
        ("dlv-1", 201.0, "dispatcher", "sent", "sms", "accepted by twilio", None),
        ("dlv-3", 300.0, "dispatcher", "skip", None, "no consent", None),  # no time: the row's last change
    ]
    assert all(log in ("[]", []) for log in logs.values())
    with Omni(old_store, clock=clock, load_entry_points=False) as omni:
        first = next(d for d in omni.deliveries() if d.id == "dlv-1")
    assert [(d.at.timestamp(), d.action, d.channel, d.reason) for d in first.decisions] == [
        (e["at"], e["action"], e["channel"], e["reason"]) for e in OLD_LOG]


def test_a_json_log_written_after_the_migration_is_read_before_the_rows(store_url: str, clock: VirtualClock) -> None:
    with Omni(store_url, clock=clock, load_entry_points=False) as omni:
        insert_delivery(omni.store, "dlv-old", OLD_LOG[:2], status="queued")
        with omni.store.transaction() as tx:
            tx.execute("INSERT INTO delivery_decisions (delivery_id, at, actor, outcome, channel, reason) "
                       "VALUES ('dlv-old', 400, 'journey', 'cancelled', NULL, 'journey exited')")
        [delivery] = omni.deliveries()
    assert [(d.action, d.actor) for d in delivery.decisions] == [
        ("defer", "dispatcher"), ("send", "dispatcher"), ("cancelled", "journey")]


def test_a_run_that_ends_first_logs_the_cancel_as_the_journeys(store_url: str, clock: VirtualClock) -> None:
    from omnisdk.delivery import cancel_run_deliveries, enqueue_delivery

    with Omni(store_url, clock=clock, load_entry_points=False) as omni:
        omni.identify("c-1", phone="+14155550100")
        now = clock.timestamp()
        with omni.store.transaction() as tx:
            did = enqueue_delivery(tx, key="run-1:nudge", customer_id="c-1", template="hello", channels=["sms"],
                                   now=now, run_id="run-1", journey="cart", step="nudge")
            assert enqueue_delivery(tx, key="run-1:nudge", customer_id="c-1", template="hello", channels=["sms"],
                                    now=now, run_id="run-1") == did  # exactly once
            assert cancel_run_deliveries(tx, "run-1", reason="goal reached: Order Completed", now=now) == 1
            assert cancel_run_deliveries(tx, "run-1", reason="again", now=now) == 0  # nothing left to cancel
        [delivery] = omni.deliveries()
    assert (delivery.status, delivery.error) == ("cancelled", "goal reached: Order Completed")
    assert [(d.action, d.actor, d.reason) for d in delivery.decisions] == [
        ("cancelled", "journey", "goal reached: Order Completed")]
