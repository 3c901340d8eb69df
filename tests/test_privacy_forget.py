"""`omni.forget`: a customer with data in every table is erased, and nothing of theirs is left in the
database's bytes (the SQLite file with its WAL, a pg_dump of the PostgreSQL schema), while the KPIs,
attribution and experiment counts add up as before. Also: the request log, suppression of a later
opt-in, resuming after a crash between batches, deliveries in flight, and plugins that fail."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

import omnisdk
from omnisdk import Omni, VirtualClock
from omnisdk.errors import NotFoundError, SuppressedError, ValidationError
from omnisdk.store import open_store
from privacy_seed import ADA, ADA_VALUES, BOB, aggregates, open_shop, seed


def database_bytes(store_url: str) -> bytes:
    """Everything the database holds on disk (SQLite: the file, its WAL and shared memory) or in a
    dump (PostgreSQL: pg_dump of the test's schema, data and all)."""
    parts = urlsplit(store_url)
    if parts.scheme == "sqlite":
        path = Path(store_url.removeprefix("sqlite:///"))
        return b"".join(p.read_bytes() for p in (path, Path(f"{path}-wal"), Path(f"{path}-shm")) if p.exists())
    schema = parse_qs(parts.query)["schema"][0]
    dump = subprocess.run(["pg_dump", "-h", parts.hostname or "127.0.0.1", "-p", str(parts.port or 5432),
                           "-d", parts.path.lstrip("/"), "-n", schema, "--no-owner"],
                          check=True, capture_output=True)
    return dump.stdout


def found(data: bytes, values: dict[str, str]) -> dict[str, str]:
    lowered = data.lower()
    return {what: value for what, value in values.items() if value.lower().encode() in lowered}


def with_queued_email_cancelled(aggregates: dict[str, Any]) -> dict[str, Any]:
    """The one change an erasure makes to the KPIs: the email still queued for Ada was cancelled, not sent."""
    for row in (aggregates["total"], next(r for r in aggregates["kpis"] if r["channel"] == "email")):
        row["pending"], row["cancelled"] = row["pending"] - 1, row["cancelled"] + 1
    return aggregates


def test_forget_leaves_nothing_of_the_customer_in_the_database_and_the_aggregates_add_up(
    store_url: str, clock: VirtualClock
) -> None:
    with open_shop(store_url, clock) as omni:
        seed(omni)
        merged = omni.export(ADA)["merged_ids"]
        assert merged, "the anonymous web profile was merged into Ada's"
        values = {**ADA_VALUES, **{f"merged id {i}": m for i, m in enumerate(merged)}}
        sent = [d.provider_message_id for d in omni.deliveries(customer_id=ADA) if d.provider_message_id]
        values.update({f"provider id {i}": p for i, p in enumerate(sent)})
        before = aggregates(omni)
        seeded = omni.export(ADA)["tables"]
        assert {t for t, rows in seeded.items() if rows} >= {
            "customers", "identities", "consents", "touchpoints", "deliveries", "delivery_decisions", "journey_runs",
            "journey_steps", "experiment_exposures", "segment_members", "merges"}
        assert any(d["sent_content"] for d in seeded["deliveries"]), "a rendered body is stored"
        assert any(d["channel"] == "direct_mail" for d in seeded["deliveries"])
        assert {t["channel"] for t in seeded["touchpoints"]} >= {"web", "pos"}
        assert [c["evidence"] for c in seeded["consents"] if c["evidence"]]
        assert omni.quarantine(table="touchpoints")
        omni.store.reclaim()  # SQLite: checkpointed, so the bytes before are the file's own
    assert found(database_bytes(store_url), values) == values  # the scan finds what is there

    with open_shop(store_url, clock) as omni:
        request = omni.forget(ADA, requested_by="dpo@shop.example", reason="GDPR art. 17 request #88")
        assert request.status == "done"
        assert request.subject is None
        assert request.removed["customers"] == 1 + len(merged)
        assert request.removed["identities"] == 6
        assert request.removed["consents"] == 3
        assert request.removed["quarantine"] == 1
        assert request.removed["deliveries"] == 4
        after = aggregates(omni)
        with pytest.raises(NotFoundError):
            omni.export(ADA)
        assert omni.customer(BOB["customer id"]).email == BOB["email"]
        runs = omni.runs(journey="review-request")
        assert sorted(r.status for r in runs) == ["cancelled", "waiting"]
        assert [r.customer_id for r in runs if r.status == "waiting"] == [BOB["customer id"]]
        cancelled = [d for d in omni.deliveries() if d.status == "cancelled"]
        assert len(cancelled) == 1 and cancelled[0].customer_id.startswith("forgotten:")
    assert after == with_queued_email_cancelled(before)
    left = database_bytes(store_url)
    assert found(left, values) == {}
    assert found(left, BOB) == BOB


def test_the_request_is_logged_without_the_data_and_a_later_opt_in_is_refused(
    store_url: str, clock: VirtualClock
) -> None:
    with open_shop(store_url, clock) as omni:
        seed(omni)
        request = omni.forget({"email": ADA_VALUES["email"]}, requested_by="support", reason="asked by phone")
        [logged] = omni.forget_requests()
        assert (logged.id, logged.status, logged.requested_by, logged.reason) == (
            request.id, "done", "support", "asked by phone")
        assert logged.removed == request.removed and logged.finished_at is not None
        assert ADA not in repr(logged) and ADA_VALUES["email"] not in repr(logged)

        # An old list imported again: the profile comes back, its marketing opt-in does not.
        omni.identify("imported-1", email=" Ada.Lovelace@Analytical.example ")
        with pytest.raises(SuppressedError) as refused:
            omni.consent("imported-1", channel="email", granted=True, source="import")
        assert refused.value.field == "who" and "email" in str(refused.value)
        omni.consent("imported-1", channel="email", granted=True, purpose="transactional", source="checkout")
        omni.consent("imported-1", channel="sms", granted=True, source="import")  # another channel, no phone
        assert omni.export("imported-1")["suppression"] == {"suppressed": True, "kinds": ["email"]}
        # The customer comes back and opts in themselves: the suppression is lifted, on purpose.
        assert omni.lift_suppression("imported-1", requested_by="support") == 1
        omni.consent("imported-1", channel="email", granted=True, source="double-opt-in")
        assert omni.export("imported-1")["suppression"]["suppressed"] is False


def test_forget_refuses_unknown_customers_and_bad_requests(store_url: str, clock: VirtualClock) -> None:
    with open_shop(store_url, clock) as omni:
        with pytest.raises(NotFoundError):
            omni.forget("nobody", requested_by="dpo")
        with pytest.raises(NotFoundError):
            omni.forget({"email": "nobody@example.com"}, requested_by="dpo")
        omni.identify("c-1", email="c1@example.com")
        with pytest.raises(ValidationError) as bad:
            omni.forget("c-1", requested_by=" ")
        assert bad.value.field == "requested_by"
        with pytest.raises(ValidationError) as bad:
            omni.forget({"email": "not an email"}, requested_by="dpo")
        assert bad.value.field.startswith("who")
        assert omni.forget_requests() == []
        assert omni.customer("c-1").email == "c1@example.com"


class Crash(BaseException):
    pass


def crash_on_commit(store: Any, commits: int) -> None:
    """From now on, the `commits`th transaction of `store` (a real one) fails before it commits."""
    real = store.transaction
    left = [commits]

    @contextmanager
    def transaction(*args: Any, **kwargs: Any) -> Iterator[Any]:
        with real(*args, **kwargs) as tx:
            yield tx
            left[0] -= 1
            if left[0] == 0:
                raise Crash("killed between batches")

    store.transaction = transaction


@pytest.mark.parametrize("crash_at", [2, 5, 9])
def test_an_erasure_cut_off_between_batches_is_finished_by_the_next_pass(
    store_url: str, clock: VirtualClock, crash_at: int
) -> None:
    with open_shop(store_url, clock) as omni:
        seed(omni)
        merged = omni.export(ADA)["merged_ids"]
        before = aggregates(omni)
    store = open_store(store_url)
    with open_shop(store, clock, privacy={"batch_size": 1}) as omni, pytest.raises(Crash):
        crash_on_commit(store, crash_at)
        omni.forget(ADA, requested_by="dpo")
    store.close()
    with open_shop(store_url, clock, privacy={"batch_size": 1}) as omni:
        [open_request] = omni.forget_requests()
        assert open_request.status == "erasing" and open_request.subject is not None
        assert omni.run_until_idle() >= 1  # the worker picks the request up where it stopped
        [done] = omni.forget_requests()
        assert done.status == "done" and done.subject is None
        assert done.removed["identities"] == 6 and done.removed["customers"] == 1 + len(merged)
        assert aggregates(omni) == with_queued_email_cancelled(before)
        with pytest.raises(NotFoundError):
            omni.export(ADA)
    assert found(database_bytes(store_url), ADA_VALUES) == {}


def test_a_delivery_being_sent_is_waited_for_then_erased(store_url: str, clock: VirtualClock) -> None:
    with open_shop(store_url, clock) as omni:
        omni.identify(ADA, email=ADA_VALUES["email"], traits={"first_name": "Augusta"})
        sending = omni.send(ADA, "receipt", channel="email", data={"order_id": "o-7"}, purpose="transactional")
        with omni.store.transaction() as tx:  # a worker claimed it and is calling the provider
            tx.execute("UPDATE deliveries SET status = 'sending', lease_owner = 'w1', lease_until = ? WHERE id = ?",
                       (clock.timestamp() + 60, sending.id))
        request = omni.forget(ADA, requested_by="dpo")
        assert request.status == "erasing" and request.due_at is not None
        [waiting] = omni.deliveries(status="sending")
        assert waiting.id == sending.id  # untouched while in flight
        with omni.store.transaction() as tx:  # the worker recorded its outcome
            tx.execute("UPDATE deliveries SET status = 'sent', provider_message_id = 'pm-ada', lease_owner = NULL "
                       "WHERE id = ?", (sending.id,))
        clock.advance(minutes=10)
        omni.run_until_idle()
        [done] = omni.forget_requests()
        assert done.status == "done"
        [erased] = omni.deliveries(status="sent")
        assert (erased.provider_message_id, erased.customer_id) == (None, f"forgotten:{request.id}")


class Audience:
    """A plugin that forwards erasures to a provider holding an audience, which fails at first."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.erased: list[tuple[str, tuple[tuple[str, str], ...]]] = []

    @omnisdk.hookimpl
    def forget_requested(self, request: Any) -> None:
        if self.failures:
            self.failures -= 1
            raise ConnectionError(f"audience API unreachable for {request.identifiers[0][1]}")
        self.erased.append((request.customer_id, request.identifiers))


class Steady:
    def __init__(self) -> None:
        self.calls = 0

    @omnisdk.hookimpl
    def forget_requested(self, request: Any) -> None:
        self.calls += 1


def test_a_failing_plugin_is_recorded_and_retried_and_never_loses_the_request(
    store_url: str, clock: VirtualClock
) -> None:
    audience, steady = Audience(failures=2), Steady()
    with Omni(store_url, clock=clock, plugins=[audience, steady]) as omni:
        omni.identify("c-9", email="nine@example.com", phone="+14155550199")
        request = omni.forget("c-9", requested_by="dpo")
        assert request.status == "notifying" and request.plugin_attempts == 1
        [error] = request.plugin_errors.values()
        assert "ConnectionError" in error and "nine@example.com" not in error
        assert steady.calls == 1
        with pytest.raises(NotFoundError):
            omni.export("c-9")  # the data is gone already; only the notice is pending
        omni.run_until_idle()
        assert omni.forget_requests()[0].status == "notifying"  # not due yet: retried with backoff
        for _ in range(3):
            clock.advance(hours=1)
            omni.run_until_idle()
        [done] = omni.forget_requests()
        assert done.status == "done" and done.plugin_errors == {} and done.subject is None
        assert audience.erased == [("c-9", (("email", "nine@example.com"), ("phone", "+14155550199"),
                                            ("user_id", "c-9")))]
        assert steady.calls == 1  # a plugin that succeeded is not called again


def test_async_forget_and_export(store_url: str, clock: VirtualClock) -> None:
    async def scenario() -> None:
        async with omnisdk.AsyncOmni(store_url, clock=clock) as omni:
            await omni.identify("c-5", email="five@example.com")
            document = await omni.export("c-5")
            assert document["customer_id"] == "c-5"
            request = await omni.forget("c-5", requested_by="dpo")
            assert request.status == "done"
            assert [r.id for r in await omni.forget_requests()] == [request.id]

    asyncio.run(scenario())
