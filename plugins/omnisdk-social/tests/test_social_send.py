"""WhatsApp Cloud and Messenger sends against the Meta Graph imitation: the 24-hour window decides the form."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import httpx
import openapi_core
import pytest
from omnisdk_social import Messenger, WhatsAppCloud
from omnisdk_social.whatsapp import whatsapp_message
from openapi_core.testing import MockRequest

from omnisdk import Accepted, ConfigError, Outgoing, PermanentError, RetryableError, Social, VirtualClock
from omnisdk.testing.conformance import Reply, ScriptedHTTPEndpoint
from omnisdk.testing.imitations import CONTRACTS, Faults, MetaGraphImitation

pytestmark = pytest.mark.anyio
TOKEN = "EAAG-test"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def graph() -> Iterator[MetaGraphImitation]:
    with MetaGraphImitation(access_token=TOKEN, faults=Faults()) as server:
        yield server


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()


def whatsapp(graph: MetaGraphImitation, clock: VirtualClock) -> WhatsAppCloud:
    config = WhatsAppCloud.Config(phone_number_id="106540352242922", access_token=TOKEN, app_secret="s",
                                  base_url=graph.base_url)
    return WhatsAppCloud(config, http=httpx.AsyncClient(), clock=clock)


def messenger(graph: MetaGraphImitation, clock: VirtualClock) -> Messenger:
    config = Messenger.Config(page_access_token=TOKEN, app_secret="s", base_url=graph.base_url)
    return Messenger(config, http=httpx.AsyncClient(), clock=clock)


def outgoing(to: str, content: Social, last_inbound_at: datetime | None, purpose: str = "marketing") -> Outgoing:
    return Outgoing(delivery_id="d1", idempotency_key="run:s:social", customer_id="c-1", to=to, content=content,
                    last_inbound_at=last_inbound_at, purpose=purpose)


CART = Social(text="Your cart is waiting", template="cart_reminder", template_params=("Ada",))


async def test_whatsapp_inside_the_window_sends_free_form_text(graph, clock) -> None:
    [outcome] = await whatsapp(graph, clock).send([outgoing("+16315551181", CART, clock.now() - timedelta(hours=23))])
    graph.assert_no_violations()
    assert isinstance(outcome, Accepted) and outcome.provider_message_id.startswith("wamid.")
    [sent] = graph.whatsapp_messages
    assert sent["type"] == "text" and sent["text"]["body"] == "Your cart is waiting" and sent["to"] == "16315551181"
    assert sent["phone_number_id"] == "106540352242922"
    assert sent["biz_opaque_callback_data"] == "d1"  # the delivery id, echoed in every status webhook
    assert graph.warnings == []  # declared by Meta's reference (and the patched contract)


async def test_whatsapp_outside_the_window_uses_the_approved_template(graph, clock) -> None:
    [outcome] = await whatsapp(graph, clock).send([outgoing("+16315551181", CART, clock.now() - timedelta(hours=25))])
    graph.assert_no_violations()
    assert isinstance(outcome, Accepted) and outcome.details == {"template": True}
    [sent] = graph.whatsapp_messages
    assert sent["type"] == "template"
    assert sent["template"] == {"name": "cart_reminder", "language": {"policy": "deterministic", "code": "en_US"},
                                "components": [{"type": "body", "parameters": [{"type": "text", "text": "Ada"}]}]}
    assert graph.warnings == []  # the loose contract check found nothing either


def cloud_api_problems(body: dict[str, Any]) -> list[Exception]:
    """What openapi-core, reading Meta's published contract, finds wrong with a message request."""
    spec = openapi_core.OpenAPI.from_dict(json.loads((CONTRACTS / "whatsapp_cloud_messages.patched.json").read_text()))
    request = MockRequest("https://graph.facebook.com", "post", "/v23.0/106540352242922/messages",
                          data=json.dumps(body), content_type="application/json",
                          headers={"Authorization": f"Bearer {TOKEN}"})
    return list(spec.unmarshal_request(request).errors)


@pytest.mark.parametrize("free_form", [False, True], ids=["template", "text"])
def test_whatsapp_requests_satisfy_the_published_contract(free_form: bool) -> None:
    assert cloud_api_problems(whatsapp_message("+16315551181", CART, free_form=free_form)) == []


def test_the_contract_oracle_refuses_a_template_language_without_policy() -> None:
    body = whatsapp_message("+16315551181", CART, free_form=False)
    del body["template"]["language"]["policy"]
    [problem] = cloud_api_problems(body)
    assert "'policy' is a required property" in str(problem.__cause__)


@pytest.mark.parametrize("last_inbound", [None, timedelta(hours=24), timedelta(days=3)])
async def test_whatsapp_outside_the_window_without_template_falls_back(graph, clock, last_inbound) -> None:
    when = None if last_inbound is None else clock.now() - last_inbound
    [outcome] = await whatsapp(graph, clock).send([outgoing("+16315551181", Social(text="hi"), when)])
    assert isinstance(outcome, PermanentError)
    assert outcome.fallback and outcome.code == "outside_window" and not outcome.forget_address
    assert graph.requests == []


async def test_messenger_inside_the_window_is_a_response(graph, clock) -> None:
    content = Social(text="Still thinking it over?", quick_replies=("Yes", "No thanks"))
    [outcome] = await messenger(graph, clock).send([outgoing("PSID-1", content, clock.now() - timedelta(hours=1))])
    graph.assert_no_violations()
    assert isinstance(outcome, Accepted) and outcome.provider_message_id.startswith("m_")
    [sent] = graph.messenger_messages
    assert sent["recipient"] == {"id": "PSID-1"} and sent["messaging_type"] == "RESPONSE"
    assert [q["title"] for q in sent["message"]["quick_replies"]] == ["Yes", "No thanks"]


async def test_messenger_outside_the_window_uses_a_tag_for_transactional_updates(graph, clock) -> None:
    content = Social(text="Your order is ready for pickup", tag="POST_PURCHASE_UPDATE")
    [outcome] = await messenger(graph, clock).send([outgoing("PSID-1", content, None, purpose="transactional")])
    graph.assert_no_violations()
    assert isinstance(outcome, Accepted)
    assert graph.messenger_messages[0]["messaging_type"] == "MESSAGE_TAG"
    assert graph.messenger_messages[0]["tag"] == "POST_PURCHASE_UPDATE"


@pytest.mark.parametrize("content", [Social(text="20% off!"), Social(text="20% off!", tag="POST_PURCHASE_UPDATE")])
async def test_messenger_marketing_outside_the_window_falls_back(graph, clock, content) -> None:
    [outcome] = await messenger(graph, clock).send([outgoing("PSID-1", content, clock.now() - timedelta(days=2))])
    assert isinstance(outcome, PermanentError) and outcome.fallback and outcome.code == "outside_window"
    assert graph.requests == []


async def test_unreachable_person_is_permanent(graph, clock) -> None:
    graph.unreachable.add("PSID-gone")
    [outcome] = await messenger(graph, clock).send([outgoing("PSID-gone", CART, clock.now())])
    assert isinstance(outcome, PermanentError) and outcome.code == "551/1545041" and outcome.fallback


async def test_graph_rate_limit_is_retryable(graph, clock) -> None:
    graph.faults.fail_next(1, "rate_limit")
    [outcome] = await whatsapp(graph, clock).send([outgoing("+16315551181", CART, clock.now())])
    assert isinstance(outcome, RetryableError) and outcome.retry_after == 1.0


async def test_bad_access_token_is_permanent(graph, clock) -> None:
    config = WhatsAppCloud.Config(phone_number_id="1", access_token="wrong", app_secret="s", base_url=graph.base_url)
    [outcome] = await WhatsAppCloud(config, http=httpx.AsyncClient(), clock=clock).send(
        [outgoing("+16315551181", CART, clock.now())])
    assert isinstance(outcome, PermanentError) and outcome.code == "190"


def test_phone_number_id_must_be_the_numeric_id() -> None:
    with pytest.raises(ConfigError) as info:
        WhatsAppCloud.Config(phone_number_id="+1 631 555 1181", access_token="t", app_secret="s")
    assert info.value.field == "phone_number_id"



@pytest.mark.parametrize(("provider", "settings", "to"), [
    (WhatsAppCloud, {"phone_number_id": "106540352242922", "access_token": TOKEN}, "+16315551181"),
    (Messenger, {"page_access_token": TOKEN}, "5551181"),
])
async def test_a_2xx_without_json_is_accepted_not_resent(provider, settings, to, clock) -> None:
    """A proxy's HTML page on a 2xx still means the message was taken: a retry would send it twice."""
    async with ScriptedHTTPEndpoint({"ok": Reply(200, {"Content-Type": "text/html"}, "<html>OK</html>")}) as server:
        config = provider.Config(**settings, app_secret="s", base_url=server.base_url)
        async with httpx.AsyncClient() as http:
            [outcome] = await provider(config, http=http, clock=clock).send([outgoing(to, CART, clock.now())])
    assert len(server.requests) == 1
    assert isinstance(outcome, Accepted) and outcome.provider_message_id == "d1"
