"""No row can stop the runner: rows written by old versions, other tools or corruption are quarantined.

Every test writes its bad values straight into the store with SQL, as such a writer would, then
shows that the worker goes on, everyone else's messages go out, and the row waits in the
quarantine (API and CLI) until it is repaired or dropped.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import structlog
from structlog.testing import capture_logs

from omnisdk import SMS, Message, NotFoundError, Omni, QuarantinedRow, VirtualClock, journey
from omnisdk.cli import main

#: 2026-01-05 12:00 UTC in epoch milliseconds: a year-58000 timestamp when read as seconds.
EPOCH_MS = 1_767_614_400_000
CUSTOMERS = ("c-0", "c-1", "c-2")
VICTIM = "c-1"


@journey("welcome", version="1", trigger="Signed Up")
async def welcome(ctx: Any) -> None:
    await ctx.send("hello", "hello", channel="sms", purpose="transactional")
    await ctx.sleep("nap", timedelta(hours=1))
    await ctx.send("bye", "bye", channel="sms", purpose="transactional")


@pytest.fixture(autouse=True)
def _reset_logging() -> Iterator[None]:
    """`omnisdk` (the CLI) points structlog at the captured stderr; undo it after each test."""
    yield
    structlog.reset_defaults()


def _client(store_url: str, clock: VirtualClock) -> Omni:
    omni = Omni(store_url, clock=clock, config={"channels": {"sms": {"provider": "memory"}}})
    omni.register(welcome)
    # `event` and `history` make the dispatcher read the trigger and recent touchpoints too.
    omni.templates.add(Message("hello", sms=SMS(text="Hi, {{ trigger.name }}")))
    omni.templates.add(Message("bye", sms=SMS(text="Bye{% for t in history %}.{% endfor %}")))
    return omni


def _sql(omni: Omni, statement: str, params: tuple[Any, ...] = ()) -> None:
    with omni.store.transaction() as tx:
        tx.execute(statement, params)


def _sent(omni: Omni, step: str) -> set[str]:
    return {d.customer_id for d in omni.deliveries(status="sent") if d.step == step}


def _signed_up(omni: Omni) -> None:
    for i, cid in enumerate(CUSTOMERS):
        omni.identify(cid, phone=f"+1415555010{i}")
        omni.track(cid, "Signed Up", channel="web")


# What an old version, another tool or a corrupted disk could have left in each table, for the
# victim, while its run sleeps between its two messages. Each statement is valid on both stores.
POISON: dict[str, list[str]] = {
    "touchpoints": [
        "INSERT INTO touchpoints (id, customer_id, channel, name, properties, occurred_at, recorded_at) "
        f"VALUES ('tp-ms', 'c-1', 'web', 'Product Viewed', '{{}}', {EPOCH_MS}, 1767614400)",
        "INSERT INTO touchpoints (id, customer_id, channel, name, properties, occurred_at, recorded_at, routed) "
        "VALUES ('tp-arr', 'c-1', 'pigeon', 'Product Viewed', '[1, 2]', 1767614400, 1767614400, 1)",
    ],
    "customers": ["UPDATE customers SET timezone = 'Mars/Olympus_Mons' WHERE id = 'c-1'"],
    "identities": [f"UPDATE identities SET created_at = {EPOCH_MS} WHERE customer_id = 'c-1'"],
    "consents": [
        "INSERT INTO consents (customer_id, channel, purpose, granted, source, recorded_at) "
        f"VALUES ('c-1', 'sms', 'marketing', 1, 'old-tool', {EPOCH_MS})",
    ],
    "deliveries": [
        "INSERT INTO deliveries (id, idempotency_key, customer_id, template, channels, purpose, data, status, "
        "due_at, decisions, created_at, updated_at) VALUES ('dlv-bad', 'old:1', 'c-1', 'hello', '{\"sms\": 1}', "
        "'transactional', '[]', 'queued', 1767614400, '[]', 1767614400, 1767614400)",
        # cut off mid-call by a crash, as the reconciler finds it
        "INSERT INTO deliveries (id, idempotency_key, customer_id, template, channels, purpose, data, status, "
        "due_at, lease_until, decisions, created_at, updated_at) VALUES ('dlv-cut', 'old:2', 'c-1', 'hello', "
        "'[\"sms\"]', 'transactional', '{}', 'sending', 1767614400, 0, '{\"at\": 1}', 1767614400, 1767614400)",
    ],
    "journey_runs": ["UPDATE journey_runs SET trigger = '{\"id\": \"tp\"}' WHERE customer_id = 'c-1'"],
    "journey_steps": [
        "UPDATE journey_steps SET result = '{}' WHERE run_id IN (SELECT id FROM journey_runs WHERE customer_id = 'c-1')"
    ],
    "sendtime_prior": ["INSERT INTO sendtime_prior (channel, hour, weight, computed_at) VALUES ('', 99, 1, 1e300)"],
}


#: Rows each poisoning leaves unreadable, where it is not one per statement.
ROWS = {"identities": 2, "journey_steps": 2}  # the user id and the phone; the steps "hello" and "nap"


@pytest.mark.parametrize("table", sorted(POISON))
def test_an_unreadable_row_in_any_table_is_quarantined_and_everyone_else_is_served(
    store_url: str, table: str
) -> None:
    clock = VirtualClock()
    with _client(store_url, clock) as omni:
        _signed_up(omni)
        omni.run_until_idle()
        assert _sent(omni, "hello") == set(CUSTOMERS)
        for statement in POISON[table]:
            _sql(omni, statement)

        clock.advance(hours=1)
        with capture_logs() as logs:
            omni.run_until_idle()
            omni.best_time("c-0")  # the send-time prior is read here
            omni.timeline("c-0"), omni.deliveries(), omni.runs()

        assert _sent(omni, "bye") >= {"c-0", "c-2"}
        quarantined = omni.quarantine()
        assert {q.table for q in quarantined} >= {table}
        assert len([q for q in quarantined if q.table == table]) == ROWS.get(table, len(POISON[table]))
        logged = [e for e in logs if e["event"] == "row_quarantined"]
        assert {e["table"] for e in logged} >= {table}
        assert all(set(e) <= {"event", "log_level", "logger", "table", "quarantine_id", "error_type", "key"}
                   for e in logged)
        assert omni.run_until_idle() == 0  # nothing left that keeps failing


def _victim_signs_up_in_milliseconds(omni: Omni) -> None:
    """Everyone signs up; the victim's event was stored by an old writer in epoch milliseconds."""
    for i, cid in enumerate(CUSTOMERS):
        omni.identify(cid, phone=f"+1415555010{i}")
    omni.track("c-0", "Signed Up", channel="web")
    omni.track("c-2", "Signed Up", channel="web")
    _sql(omni, "INSERT INTO touchpoints (id, customer_id, channel, name, properties, occurred_at, recorded_at) "
               f"VALUES ('tp-ms', 'c-1', 'web', 'Signed Up', '{{}}', {EPOCH_MS}, 1767614400)")


def test_epoch_ms_timestamp_no_longer_breaks_timeline_or_the_worker_and_repair_fixes_it(store_url: str) -> None:
    """The reported case: a touchpoint stored with epoch milliseconds (year 58375)."""
    clock = VirtualClock()
    with _client(store_url, clock) as omni:
        _victim_signs_up_in_milliseconds(omni)

        assert omni.timeline(VICTIM) == []
        omni.run_until_idle()
        assert _sent(omni, "hello") == {"c-0", "c-2"}
        [row] = omni.quarantine()
        assert (row.table, dict(row.key), row.error_type) == ("touchpoints", {"seq": row.key["seq"]}, "ValueError")
        assert row.values["occurred_at"] == EPOCH_MS and row.values["id"] == "tp-ms"

        result = omni.repair_quarantined()
        assert (result.repaired, dict(result.failed)) == ((row.id,), {})
        assert omni.quarantine() == []
        [touchpoint] = omni.timeline(VICTIM)
        assert touchpoint.occurred_at == datetime(2026, 1, 5, 12, 0, tzinfo=UTC)
        omni.run_until_idle()  # the repaired event is routed now: the victim's journey starts
        assert _sent(omni, "hello") == set(CUSTOMERS)


def test_a_quarantined_consent_entry_fails_closed_until_repaired(store_url: str) -> None:
    with Omni(store_url, clock=VirtualClock()) as omni:
        omni.identify("c-1", phone="+14155550101")
        omni.consent("c-1", channel="sms", granted=True)
        _sql(omni, "INSERT INTO consents (customer_id, channel, purpose, granted, source, recorded_at) "
                   f"VALUES ('c-1', 'sms', 'marketing', 0, 'old-tool', {EPOCH_MS})")  # a STOP, stored wrongly
        assert not omni.customer("c-1").has_consent("sms")
        [row] = omni.quarantine(table="consents")
        assert omni.customer("c-1").consent_for("sms").source == f"quarantine:{row.id}"  # type: ignore[union-attr]

        assert omni.repair_quarantined([row.id]).repaired == (row.id,)
        entry = omni.customer("c-1").consent_for("sms")
        assert entry is not None and (entry.granted, entry.source) == (False, "old-tool")


def test_a_merge_with_an_unreadable_profile_quarantines_it_and_merges_on(store_url: str) -> None:
    with Omni(store_url, clock=VirtualClock()) as omni:
        anon = omni.track({"anonymous_id": "a-1"}, "Product Viewed", channel="web").customer_id
        omni.identify("c-1", traits={"first_name": "Ada"})
        _sql(omni, "UPDATE customers SET traits = '[\"not\", \"an object\"]' WHERE id = ?", (anon,))
        omni.identify("c-1", anonymous_id="a-1")  # folds the anonymous profile into c-1
        assert omni.customer(anon).id == "c-1" and omni.customer("c-1").first_name == "Ada"
        [row] = omni.quarantine()
        assert (row.table, row.key) == ("customers", {"id": anon})


def test_repair_keeps_what_it_cannot_fix_and_drop_removes_it(store_url: str) -> None:
    with Omni(store_url, clock=VirtualClock()) as omni:
        omni.track("c-1", "Product Viewed", {"sku": "a"}, channel="web")
        _sql(omni, "UPDATE touchpoints SET properties = '[1]' WHERE customer_id = 'c-1'")
        assert omni.timeline("c-1") == []
        [row] = omni.quarantine()
        result = omni.repair_quarantined()
        assert result.repaired == () and "properties: expected a JSON object" in result.failed[row.id]
        [kept] = omni.quarantine()
        assert kept.repair_error == result.failed[row.id] and kept.values == row.values
        with pytest.raises(NotFoundError):
            omni.drop_quarantined([row.id + 1000])
        assert omni.drop_quarantined([row.id]) == 1
        assert omni.quarantine() == []


def test_an_unreadable_signing_key_is_quarantined_and_replaced(store_url: str) -> None:
    with Omni(store_url, clock=VirtualClock()) as omni:
        _sql(omni, "UPDATE signing_keys SET secret = '' WHERE name = 'links'")
    with Omni(store_url, clock=VirtualClock()) as omni:
        assert [q.table for q in omni.quarantine()] == ["signing_keys"]
        assert omni.quarantine()[0].values["secret"] == ""


def test_an_unreadable_broadcast_is_quarantined_and_other_broadcasts_go_out(store_url: str) -> None:
    from omnisdk.segments import trait

    clock = VirtualClock()
    with _client(store_url, clock) as omni:
        for i, cid in enumerate(CUSTOMERS):
            omni.identify(cid, phone=f"+1415555010{i}", traits={"tier": "gold"})
        bad = omni.broadcast("hello", trait("tier") == "gold", channel="sms", purpose="transactional")
        good = omni.broadcast("bye", trait("tier") == "gold", channel="sms", purpose="transactional")
        _sql(omni, "UPDATE broadcasts SET segment_params = '{}' WHERE id = ?", (bad.id,))
        omni.run_until_idle()
        assert omni.broadcast_status(good.id).sent == len(CUSTOMERS)
        assert [(q.table, q.key["id"]) for q in omni.quarantine()] == [("broadcasts", bad.id)]
        assert [b.id for b in omni.broadcasts()] == [good.id]


def test_cli_lists_repairs_and_drops(store_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    with Omni(store_url, clock=VirtualClock()) as omni:
        omni.track("c-1", "Product Viewed", channel="web")
        omni.track("c-2", "Product Viewed", channel="web")
        _sql(omni, f"UPDATE touchpoints SET occurred_at = {EPOCH_MS} WHERE customer_id = 'c-1'")
        _sql(omni, "UPDATE touchpoints SET properties = '\"x\"' WHERE customer_id = 'c-2'")
        omni.timeline("c-1"), omni.timeline("c-2")
        ms, text = sorted(omni.quarantine(), key=lambda q: q.values["customer_id"])
    capsys.readouterr()

    assert main(["--store", store_url, "quarantine", "list"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split("\t") == ["id", "table", "key", "error", "quarantined_at", "repair_error"]
    assert [line.split("\t")[:2] for line in out[1:]] == [[str(ms.id), "touchpoints"], [str(text.id), "touchpoints"]]
    assert main(["--store", store_url, "quarantine", "list", "--json", "--table", "touchpoints"]) == 0
    assert '"occurred_at": 1767614400000' in capsys.readouterr().out

    assert main(["--store", store_url, "quarantine", "repair"]) == 1  # one could not be put back
    out = capsys.readouterr().out
    assert f"{ms.id}\trepaired" in out and f"{text.id}\tkept\tproperties: expected a JSON object" in out
    assert main(["--store", store_url, "quarantine", "drop"]) == 1
    assert "give the ids to drop" in capsys.readouterr().err
    assert main(["--store", store_url, "quarantine", "drop", str(text.id)]) == 0
    assert capsys.readouterr().out == "dropped 1\n"
    with Omni(store_url) as omni:
        assert omni.quarantine() == [] and len(omni.timeline("c-1")) == 1
    assert main(["--store", store_url, "quarantine", "list", "--table", "nope"]) == 1


WORKER_MODULE = '''
from omnisdk import journey

@journey("welcome", version="1", trigger="Signed Up")
async def welcome(ctx):
    await ctx.send("hello", "hello", channel="sms", purpose="transactional")
'''


def test_omnisdk_worker_keeps_running_past_a_poisoned_row_and_exits_0(store_url: str, tmp_path: Path) -> None:
    (tmp_path / "templates").mkdir()
    (tmp_path / "templates" / "hello.yaml").write_text('sms:\n  text: "Hi, {{ trigger.name }}"\n')
    config = tmp_path / "omnisdk.toml"
    config.write_text(f'[channels.sms]\nprovider = "memory"\n\n[templates]\nfolder = "{tmp_path / "templates"}"\n')
    (tmp_path / "poison_worker_mod.py").write_text(WORKER_MODULE)
    with Omni(store_url, clock=VirtualClock()) as omni:
        _victim_signs_up_in_milliseconds(omni)
    worker = subprocess.Popen(
        [sys.executable, "-m", "omnisdk", "--store", store_url, "--config", str(config), "worker",
         "--import", "poison_worker_mod", "--poll-interval", "0.05"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(tmp_path)}, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )
    try:
        with Omni(store_url) as omni:
            deadline = time.monotonic() + 60  # waiting for another process's work, not journey time
            while time.monotonic() < deadline and worker.poll() is None and _sent(omni, "hello") != {"c-0", "c-2"}:
                time.sleep(0.05)
            assert _sent(omni, "hello") == {"c-0", "c-2"}
            assert [q.table for q in omni.quarantine()] == ["touchpoints"]
    finally:
        worker.send_signal(signal.SIGTERM)
        _, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, err
    assert "row_quarantined" in err and "+1415" not in err


def test_quarantined_row_is_public() -> None:
    import omnisdk

    assert omnisdk.QuarantinedRow is QuarantinedRow
    assert "QuarantineRepair" in omnisdk.store.__all__ and omnisdk.QuarantineRepair is omnisdk.store.QuarantineRepair
