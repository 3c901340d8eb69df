"""The outbound event stream: `omni.events(after=cursor)` is ordered and resumable, and the event
webhooks deliver every event at least once, in order per customer, signed, to a receiver that fails
30% of its calls (500s, timeouts, 429 with Retry-After), with backoff driven by the virtual clock."""

from __future__ import annotations

import json
import random
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnisdk import Email, Message, Omni, VirtualClock
from omnisdk.errors import ConfigError, ValidationError
from omnisdk.events import SIGNATURE_HEADER, sign, verify_signature

SECRET = "whsec-0123456789abcdef"


def scenario(omni: Omni, customers: int = 8) -> None:
    """Each customer: a profile, a few events on different channels, one email sent."""
    omni.templates.add(Message("receipt", email=Email(subject="Thanks", text="Order {{ data.order_id }}")))
    for i in range(customers):
        cid = f"c-{i}"
        omni.identify(cid, email=f"person{i}@example.com", traits={"first_name": f"Name{i}"})
        omni.track(cid, "Product Viewed", {"product_id": f"sku-{i}"}, channel="web")
        omni.track(cid, "Order Completed", {"order_id": f"o-{i}", "revenue": 10.0 + i}, channel="pos")
        omni.send(cid, "receipt", channel="email", purpose="transactional", data={"order_id": f"o-{i}"})
    omni.run_until_idle()


def test_events_are_ordered_and_resumable(store_url: str, clock: VirtualClock) -> None:
    with Omni(store_url, config={"channels": {"email": {"provider": "memory"}}}, clock=clock) as omni:
        scenario(omni, customers=3)
        everything = omni.events(limit=1000).events
        seqs = [e.seq for e in everything]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
        kinds = {(e.kind, e.name) for e in everything}
        assert ("touchpoint", "Order Completed") in kinds
        assert ("delivery", "sent") in kinds  # the dispatcher's change went through the recorder
        assert ("touchpoint", "Message Sent") in kinds
        # page by page from the start gives the same events; an empty page keeps the cursor
        paged, cursor = [], None
        while True:
            page = omni.events(after=cursor, limit=4)
            if not page.events:
                assert page.cursor == (cursor or "0")
                break
            paged += page.events
            cursor = page.cursor
        assert paged == everything
        deliveries = omni.events(kinds=["delivery"], limit=1000).events
        assert deliveries and all(e.kind == "delivery" for e in deliveries)
        for delivery in omni.deliveries():  # each delivery's story, in order: queued by the app, then sent
            assert [e.name for e in deliveries if e.subject_id == delivery.id] == ["queued", "sent"]
        # nothing personal rides on a delivery event: ids and states only
        assert not any("@" in json.dumps(e.data) for e in deliveries)
        omni.track("c-0", "Product Viewed", {"product_id": "sku-9"}, channel="web")
        newer = omni.events(after=cursor).events
        assert [(e.kind, e.name, e.customer_id) for e in newer] == [("touchpoint", "Product Viewed", "c-0")]


@pytest.mark.parametrize("bad", [{"after": "x"}, {"after": -1}, {"limit": 0}, {"kinds": ["nope"]},
                                 {"kinds": "delivery"}])
def test_events_refuses_bad_arguments(tmp_path: Any, bad: dict[str, Any]) -> None:
    with Omni(f"sqlite:///{tmp_path}/o.db") as omni, pytest.raises(ValidationError) as caught:
        omni.events(**bad)
    assert caught.value.field == next(iter(bad))


@pytest.mark.parametrize("entry", [{"url": "ftp://x", "secret": SECRET}, {"url": "http://x"},
                                   {"url": "http://x", "secret": "short"},
                                   {"url": "http://x", "secret": SECRET, "kinds": ["bogus"]}])
def test_event_webhook_config_is_checked(tmp_path: Any, entry: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as caught:
        Omni(f"sqlite:///{tmp_path}/o.db", config={"event_webhooks": [entry]})
    assert str(caught.value).startswith("event_webhooks[0]")
    assert SECRET not in str(caught.value)


class FlakyReceiver:
    """A local HTTP endpoint that fails 30% of calls: in each run of ten calls, three at seeded
    places fail, in turn with a 500, a timeout (it answers after the client gave up) and a 429 with
    Retry-After. It keeps what it acknowledged."""

    def __init__(self, clock: VirtualClock, seed: int = 19, failure_rate: float = 0.3, hang: float = 0.4) -> None:
        self.clock = clock
        self.random = random.Random(seed)
        self.failure_rate = failure_rate
        self.hang = hang
        self.calls = 0
        self.planned: list[str] = []
        self.kinds = iter(("500", "timeout", "429") * 10_000)
        self.lock = threading.Lock()
        self.acknowledged: list[dict[str, Any]] = []
        self.failures: dict[str, int] = defaultdict(int)
        self.bad_signatures = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if not verify_signature(body, self.headers.get(SIGNATURE_HEADER), SECRET,
                                        now=receiver.clock.timestamp()):
                    with receiver.lock:
                        receiver.bad_signatures += 1
                    self._answer(400)
                    return
                with receiver.lock:
                    fate = receiver.fate()
                    receiver.calls += 1
                    if fate != "ok":
                        receiver.failures[fate] += 1
                    else:
                        event = json.loads(body)
                        assert self.headers["Omnisdk-Event-Id"] == event["id"]
                        receiver.acknowledged.append(event)
                if fate == "timeout":
                    time.sleep(receiver.hang)  # the client's timeout is shorter: it has given up
                    self._answer(200)
                elif fate == "429":
                    self._answer(429, {"Retry-After": "30"})
                else:
                    self._answer(500 if fate == "500" else 200)

            def _answer(self, status: int, headers: dict[str, str] | None = None) -> None:
                try:
                    self.send_response(status)
                    for key, value in (headers or {}).items():
                        self.send_header(key, value)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:  # the client went away (a timeout)
                    pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def fate(self) -> str:
        if self.failure_rate in (0.0, 1.0):
            return "ok" if self.failure_rate == 0.0 else next(self.kinds)
        if not self.planned:
            failing = set(self.random.sample(range(10), round(10 * self.failure_rate)))
            self.planned = [next(self.kinds) if i in failing else "ok" for i in range(10)][::-1]
        return self.planned.pop()

    def __enter__(self) -> FlakyReceiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(clock: VirtualClock) -> Iterator[FlakyReceiver]:
    with FlakyReceiver(clock) as flaky:
        yield flaky


def test_flaky_receiver_gets_every_event_in_order_per_customer(
    store_url: str, clock: VirtualClock, receiver: FlakyReceiver
) -> None:
    config = {"channels": {"email": {"provider": "memory"}},
              "event_webhooks": [{"url": receiver.url, "secret": SECRET, "timeout_seconds": 0.15}]}
    with Omni(store_url, config=config, clock=clock) as omni:
        scenario(omni, customers=12)
        started = clock.timestamp()
        for _ in range(300):  # the backoff is a due time: advance the virtual clock to it, never sleep
            due = omni.next_due()
            if due is None:  # nothing left in any outbox
                break
            clock.advance(seconds=max(0.0, due.timestamp() - clock.timestamp()) + 0.001)
            omni.run_until_idle()
        stream = omni.events(limit=10_000).events
    assert receiver.bad_signatures == 0
    failed = sum(receiver.failures.values())
    assert abs(failed - 0.3 * receiver.calls) <= 3 and receiver.calls > len(stream)  # 30% of calls failed
    assert set(receiver.failures) == {"500", "timeout", "429"}
    assert clock.timestamp() - started >= 30  # a Retry-After was waited for, in virtual time
    got = {e["id"] for e in receiver.acknowledged}
    assert got == {e.id for e in stream}  # every event at least once
    per_customer: dict[str, list[int]] = defaultdict(list)
    for event in receiver.acknowledged:
        per_customer[event["customer_id"]].append(event["seq"])
    expected: dict[str, list[int]] = defaultdict(list)
    for event in stream:
        expected[event.customer_id or ""].append(event.seq)
    for customer, seqs in per_customer.items():  # in order per customer, a retried one before the next
        first_seen = list(dict.fromkeys(seqs))
        assert first_seen == expected[customer]
        assert seqs == sorted(seqs)


def test_a_failing_customer_blocks_only_its_own_later_events(
    store_url: str, clock: VirtualClock, receiver: FlakyReceiver
) -> None:
    receiver.failure_rate = 0.0
    config = {"event_webhooks": [{"url": receiver.url, "secret": SECRET, "kinds": ["touchpoint"],
                                  "timeout_seconds": 0.15}]}
    with Omni(store_url, config=config, clock=clock) as omni:
        omni.track("a", "One", {}, channel="web")
        omni.track("b", "One", {}, channel="web")
        receiver.failure_rate = 1.0  # everything fails now: "a"'s event too
        omni.run_until_idle()
        assert receiver.acknowledged == []
        receiver.failure_rate = 0.0
        omni.track("b", "Two", {}, channel="web")
        omni.track("a", "Two", {}, channel="web")
        clock.advance(seconds=0.0)
        omni.run_until_idle()  # not due yet: both heads wait for their backoff
        assert receiver.acknowledged == []
        clock.advance(minutes=5)
        omni.run_until_idle()
    order = [(e["customer_id"], e["name"]) for e in receiver.acknowledged]
    assert sorted(order) == [("a", "One"), ("a", "Two"), ("b", "One"), ("b", "Two")]
    assert order.index(("a", "One")) < order.index(("a", "Two"))
    assert order.index(("b", "One")) < order.index(("b", "Two"))


def test_signature_round_trip_and_refusals() -> None:
    body = b'{"id":"evt_1"}'
    header = sign(body, SECRET, 1_700_000_000)
    assert verify_signature(body, header, SECRET, now=1_700_000_100)
    assert not verify_signature(body + b" ", header, SECRET, now=1_700_000_100)  # another body
    assert not verify_signature(body, header, SECRET + "x", now=1_700_000_100)  # another secret
    assert not verify_signature(body, header, SECRET, now=1_700_000_000 + 301)  # too old: a replay
    rotated = f"{header},v1={'0' * 64}"
    assert verify_signature(body, rotated, SECRET, now=1_700_000_000)


@settings(max_examples=300, deadline=None)
@given(body=st.binary(max_size=200), header=st.one_of(st.none(), st.text(max_size=200)),
       secret=st.text(min_size=1, max_size=40), now=st.floats(allow_nan=True, allow_infinity=True))
def test_fuzz_verify_signature_never_raises_and_accepts_only_real_signatures(
    body: bytes, header: str | None, secret: str, now: float
) -> None:
    assert verify_signature(body, header, secret, now=now) in (True, False)
    assert verify_signature(body, header, secret, now=now) is False or header is not None
    if now == now and abs(now) < 1e11:
        signed = sign(body, secret, now)
        assert verify_signature(body, signed, secret, now=now) is (now >= 0 or int(now) == 0)
        assert not verify_signature(body + b"!", signed, secret, now=now)


@pytest.mark.postgres
def test_a_reader_misses_nothing_while_writers_commit_concurrently(pg_schema_url: str) -> None:
    """Four writers on their own connections commit touchpoints while a reader pages with its
    cursor: a later `seq` never becomes visible before an earlier one, so the reader, which never
    goes back, still sees every event exactly once."""
    writers = [Omni(pg_schema_url) for _ in range(4)]
    reader = Omni(pg_schema_url)
    seen: list[int] = []
    done = threading.Event()

    def write(omni: Omni, n: int) -> None:
        for i in range(40):
            omni.track_many([(f"w{n}-{i % 5}", "Tick", {"i": i, "j": j}) for j in range(3)])

    def read() -> None:
        cursor = None
        while True:
            finished = done.is_set()
            page = reader.events(after=cursor, limit=7)
            seen.extend(e.seq for e in page.events)
            cursor = page.cursor
            if finished and not page.events:
                return

    threads = [threading.Thread(target=write, args=(omni, n)) for n, omni in enumerate(writers)]
    follower = threading.Thread(target=read)
    follower.start()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    done.set()
    follower.join()
    stored = [e.seq for e in reader.events(limit=10_000).events]
    for omni in (*writers, reader):
        omni.close()
    assert len(stored) == 4 * 40 * 3
    assert seen == stored


def test_a_journey_send_and_its_cancellation_are_on_the_stream(store_url: str, clock: VirtualClock) -> None:
    """A step queues a message for later (a send at a time in the future); the customer's purchase
    ends the journey, which cancels it: both changes are events, in order."""
    from datetime import timedelta

    from omnisdk import JourneyContext, journey

    @journey("later", version="1", trigger="Product Added", exit_on=["Order Completed"])
    async def later(ctx: JourneyContext) -> None:
        await ctx.send("nudge", "receipt", channel="email", purpose="transactional", data={"order_id": "x"},
                       at=ctx.now() + timedelta(days=1))
        await ctx.sleep("pause", timedelta(days=2))  # still running when the purchase comes

    with Omni(store_url, config={"channels": {"email": {"provider": "memory"}}}, clock=clock) as omni:
        omni.templates.add(Message("receipt", email=Email(subject="Thanks", text="Order {{ data.order_id }}")))
        omni.register(later)
        omni.identify("c-1", email="a@example.com")
        omni.track("c-1", "Product Added", {"cart_id": "k"}, channel="web")
        omni.run_until_idle()
        omni.track("c-1", "Order Completed", {"order_id": "o"}, channel="web")
        omni.run_until_idle()
        [delivery] = omni.deliveries(customer_id="c-1")
        statuses = [e.name for e in omni.events(kinds=["delivery"]).events if e.subject_id == delivery.id]
    assert delivery.status == "cancelled"
    assert statuses == ["queued", "cancelled"]
