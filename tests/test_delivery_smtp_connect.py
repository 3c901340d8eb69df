"""SMTP failures while connecting cannot have delivered anything: they are retried, never "outcome unknown".

Real sockets: a server that accepts the connection but never greets (a connect timeout), and a
port nobody listens on (refused), through the real SMTP plugin and the dispatcher.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator

import omnisdk_email
import pytest

import omnisdk
from omnisdk import Email, Message, Omni, VirtualClock
from omnisdk.delivery import enqueue_delivery, new_http_client
from omnisdk.testing.conformance import ProviderSuite


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A server that accepts connections and never says a word (no SMTP greeting)."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        accepted: list[socket.socket] = []
        stop = threading.Event()

        def accept() -> None:
            listener.settimeout(0.05)
            while not stop.is_set():
                try:
                    accepted.append(listener.accept()[0])
                except TimeoutError:
                    continue

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        yield listener.getsockname()[1]
        stop.set()
        thread.join()
        for conn in accepted:
            conn.close()


@pytest.fixture
def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])  # closed again: nobody listens there


def smtp_send(port: int) -> omnisdk.providers.Outcome:
    config = omnisdk_email.SMTPEmail.Config(host="127.0.0.1", port=port, from_="shop@example.com", starttls=False,
                                            timeout=0.3)

    async def main() -> omnisdk.providers.Outcome:
        provider = omnisdk_email.SMTPEmail(config, http=new_http_client())
        message = ProviderSuite.make_outgoing(
            to="ada@example.com", content=Email(subject="Hi", text="Hello"), purpose="transactional")
        try:
            [outcome] = await provider.send([message])
            return outcome
        finally:
            await provider.aclose()
            await provider.http.aclose()

    return asyncio.run(main())


@pytest.mark.parametrize("port", ["silent_port", "closed_port"])
def test_a_failure_while_connecting_is_retryable_and_not_ambiguous(port: str, request: pytest.FixtureRequest) -> None:
    outcome = smtp_send(request.getfixturevalue(port))
    assert isinstance(outcome, omnisdk.RetryableError)
    assert not outcome.ambiguous, outcome.reason


def test_the_dispatcher_retries_a_connect_timeout_instead_of_failing_it(silent_port: int, clock: VirtualClock) -> None:
    config = {"channels": {"email": {"provider": "smtp", "host": "127.0.0.1", "port": silent_port,
                                     "from": "shop@example.com", "starttls": False, "timeout": 0.3}}}
    with Omni("sqlite://:memory:", config=config, clock=clock) as omni:
        omni.templates.add(Message("hi", email=Email(subject="Hi", text="Hello")))
        omni.identify("c-1", email="ada@example.com")
        with omni.store.transaction() as tx:
            enqueue_delivery(tx, key="k", customer_id="c-1", template="hi", channels=["email"],
                             now=clock.timestamp(), purpose="transactional")
        omni.run_until_idle()
        [delivery] = omni.deliveries(customer_id="c-1")
    assert delivery.status == "queued"
    assert [d.action for d in delivery.decisions] == ["send", "retry"]
    assert "timeout" in delivery.decisions[-1].reason
