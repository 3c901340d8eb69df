"""The provider imitations: they take what the official SDKs send, refuse what the providers refuse,
answer in the providers' shapes, and fail on demand."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openapi_core
import pytest
from aiohttp import web
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

import omnisdk.testing.imitations as imitations
from omnisdk.testing.imitations import (
    CONTRACTS,
    Call,
    Faults,
    FCMImitation,
    Imitation,
    LobImitation,
    MailgunImitation,
    MetaGraphImitation,
    SendGridImitation,
    SquareImitation,
    TwilioImitation,
    VonageImitation,
    WebPushImitation,
    contract,
    decrypt_aes128gcm,
    route,
    twilio_signature,
)
from omnisdk.testing.imitations._jose import BadToken, verify_jwt

ORACLES = CONTRACTS / "oracles"
TWILIO_SID = "AC" + "a" * 32
MESSAGES = f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"


def oracle(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((ORACLES / name).read_text())
    return data


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def conforms(imitation: Imitation, operation: str, response: httpx.Response) -> list[str]:
    """What the contract says is wrong with a response the imitation built."""
    assert imitation.contract is not None
    problems = (
        contract(imitation.contract).operation(operation).response_problems(response.status_code, response.json())
    )
    return [str(p) for p in problems]


@pytest.fixture
def twilio() -> Iterator[TwilioImitation]:
    with TwilioImitation() as server:
        yield server


@pytest.fixture
def twilio_client(twilio: TwilioImitation) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=twilio.base_url, auth=(TWILIO_SID, "authtoken")) as client:
        yield client


# -- Twilio ------------------------------------------------------------------------------------------


def test_twilio_accepts_the_official_sdk_request(twilio: TwilioImitation) -> None:
    sdk = oracle("twilio_create_message.json")
    path = httpx.URL(sdk["url"]).path
    response = httpx.post(twilio.url(path), data=sdk["form"], auth=tuple(sdk["auth"]))

    assert response.status_code == 201
    assert response.json()["sid"].startswith("SM") and len(response.json()["sid"]) == 34
    assert conforms(twilio, f"post {MESSAGES.replace(TWILIO_SID, '{AccountSid}')}", response) == []
    assert twilio.messages[0]["to"] == sdk["form"]["To"]
    twilio.assert_no_violations()


def test_twilio_rejects_a_message_without_a_recipient(twilio: TwilioImitation, twilio_client: httpx.Client) -> None:
    response = twilio_client.post(MESSAGES, data={"From": "+15017122661", "Body": "Hi"})

    assert response.status_code == 400
    assert response.json() == {
        "code": 21604,
        "message": "A 'To' phone number is required.",
        "more_info": "https://www.twilio.com/docs/errors/21604",
        "status": 400,
    }
    assert [p.field for v in twilio.violations for p in v.problems] == ["To"]
    with pytest.raises(AssertionError, match="To"):
        twilio.assert_no_violations()


@pytest.mark.parametrize(
    ("form", "code"),
    [
        ({"To": "+15558675310", "Body": "Hi"}, 21603),
        ({"To": "+15558675310", "From": "+15017122661"}, 21602),
        ({"To": "555", "From": "+15017122661", "Body": "Hi"}, 21211),
        ({"To": "+15558675310", "From": "+15017122661", "Body": "Hi", "ValidityPeriod": "soon"}, 21201),
    ],
)
def test_twilio_enforces_what_its_docs_require(twilio_client: httpx.Client, form: dict[str, str], code: int) -> None:
    response = twilio_client.post(MESSAGES, data=form)

    assert (response.status_code, response.json()["code"]) == (400, code)


def test_twilio_refuses_wrong_credentials_without_a_violation(twilio: TwilioImitation) -> None:
    form = {"To": "+15558675310", "From": "+15017122661", "Body": "Hi"}
    response = httpx.post(twilio.url(MESSAGES), data=form, auth=(TWILIO_SID, "wrong"))

    assert response.status_code == 401
    assert response.json()["code"] == 20003
    assert twilio.violations == []


def test_twilio_lists_and_fetches_messages(twilio: TwilioImitation, twilio_client: httpx.Client) -> None:
    sent = twilio_client.post(MESSAGES, data={"To": "+15558675310", "From": "+15017122661", "Body": "Hi"}).json()

    listed = twilio_client.get(MESSAGES, params={"To": "+15558675310"})
    fetched = twilio_client.get(sent["uri"])
    missing = twilio_client.get(sent["uri"].replace(sent["sid"], "SM" + "0" * 32))

    assert [m["sid"] for m in listed.json()["messages"]] == [sent["sid"]]
    assert fetched.json() == sent
    assert (missing.status_code, missing.json()["code"]) == (404, 20404)
    assert conforms(twilio, "get /2010-04-01/Accounts/{AccountSid}/Messages.json", listed) == []


def test_twilio_signature_matches_the_official_vectors() -> None:
    params = {
        "CallSid": "CA1234567890ABCDE",
        "Digits": "1234",
        "From": "+14158675309",
        "To": "+18005551212",
        "Caller": "+14158675309",
    }
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"

    assert twilio_signature(url, params, "12345") == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    repeated = {"Sid": "CA123", "SidAccount": "AC123", "Digits": ["5678", "1234", "1234"]}
    assert twilio_signature(url, repeated, "12345") == "IK+Dwps556ElfBT0I3Rgjkr1wJU="


class Receiver(Imitation):
    """A webhook endpoint: an imitation of the app receiving callbacks."""

    @route("POST", "/cb")
    def callback(self, call: Call) -> web.StreamResponse:
        return web.Response(status=204)


def test_twilio_delivers_signed_status_callbacks(twilio: TwilioImitation, twilio_client: httpx.Client) -> None:
    with Receiver() as app:
        url = app.url("/cb")
        form = {"To": "+15558675310", "From": "+15017122661", "Body": "Hi", "StatusCallback": url}
        sid = twilio_client.post(MESSAGES, data=form).json()["sid"]

        responses = twilio.deliver_status_callbacks("delivered")

    assert [r.status_code for r in responses] == [204]
    received = app.requests[0]
    assert received.body["MessageSid"] == sid
    assert received.body["MessageStatus"] == "delivered"
    assert received.headers["X-Twilio-Signature"] == twilio_signature(url, received.body, "authtoken")
    assert twilio.deliver_status_callbacks("delivered") == []


# -- SendGrid ----------------------------------------------------------------------------------------


def test_sendgrid_accepts_the_official_sdk_request() -> None:
    with SendGridImitation() as sendgrid:
        response = httpx.post(
            sendgrid.url("/v3/mail/send"),
            json=oracle("sendgrid_mail_send_body.json"),
            headers={"Authorization": "Bearer SG.test-key"},
        )

    assert response.status_code == 202
    assert response.content == b""
    assert sendgrid.mails[0]["message_id"] == response.headers["X-Message-Id"]
    sendgrid.assert_no_violations()


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"personalizations": None}, "personalizations"),
        ({"personalizations": [{"to": [{"email": "a@example.com"}]}] * 1001}, "personalizations"),
        ({"content": None}, "content"),
        ({"from": {"name": "no address"}}, "from.email"),
    ],
)
def test_sendgrid_rejects_malformed_mail(change: dict[str, Any], field: str) -> None:
    mail = {k: v for k, v in {**oracle("sendgrid_mail_send_body.json"), **change}.items() if v is not None}
    with SendGridImitation() as sendgrid:
        response = httpx.post(sendgrid.url("/v3/mail/send"), json=mail, headers={"Authorization": "Bearer SG.test-key"})

    assert response.status_code == 400
    assert response.json()["errors"][0]["field"] == field
    assert len(sendgrid.violations) == 1
    assert sendgrid.mails == []


def test_sendgrid_throttles_with_rate_limit_headers() -> None:
    faults = Faults()
    faults.fail_next(1, "rate_limit")
    with SendGridImitation(faults=faults) as sendgrid:
        response = httpx.post(sendgrid.url("/v3/mail/send"), json={}, headers={"Authorization": "Bearer x"})

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert response.json() == {"errors": [{"message": "too many requests", "field": None}]}


# -- Mailgun -----------------------------------------------------------------------------------------


def test_mailgun_accepts_the_official_sdk_request() -> None:
    sdk = oracle("mailgun_send.json")
    headers = {"Authorization": sdk["authorization"], "Content-Type": sdk["content_type"]}
    with MailgunImitation() as mailgun:
        response = httpx.post(mailgun.url(httpx.URL(sdk["url"]).path), content=sdk["body"], headers=headers)

    assert response.status_code == 200
    assert response.json()["message"] == "Queued. Thank you."
    assert response.json()["id"].endswith("@mg.example.com>")
    assert mailgun.messages[0]["form"]["o:tag"] == ["promo"]
    mailgun.assert_no_violations()


def test_mailgun_takes_multipart_and_rejects_a_missing_sender() -> None:
    with MailgunImitation(domains={"mg.example.com"}) as mailgun:
        url = mailgun.url("/v3/mg.example.com/messages")
        files = {"attachment": ("a.txt", b"\x00\x01")}
        fields = {"from": "a@mg.example.com", "to": "b@example.com", "subject": "Hi", "text": "Hello"}
        sent = httpx.post(url, data=fields, files=files, auth=("api", "key-test"))
        sender_missing = {k: v for k, v in fields.items() if k != "from"}
        refused = httpx.post(url, data=sender_missing, files=files, auth=("api", "key-test"))
        forbidden = httpx.post(url, data=fields, auth=("api", "other"))
        elsewhere = httpx.post(url.replace("mg.example.com", "other.example"), data=fields, auth=("api", "key-test"))

    assert sent.status_code == 200
    assert mailgun.messages[0]["form"]["attachment"] == [b"\x00\x01"]
    assert (refused.status_code, refused.json()) == (400, {"message": "from parameter is missing"})
    assert (forbidden.status_code, forbidden.text) == (401, "Forbidden")
    assert (elsewhere.status_code, elsewhere.json()) == (404, {"message": "Domain not found: other.example"})
    assert len(mailgun.violations) == 1


# -- Vonage ------------------------------------------------------------------------------------------


def test_vonage_accepts_the_official_sdk_request_and_splits_long_texts() -> None:
    sdk = oracle("vonage_sms_send.json")
    headers = {"Authorization": sdk["authorization"], "Content-Type": sdk["content_type"]}
    with VonageImitation() as vonage:
        short = httpx.post(vonage.url("/sms/json"), content=sdk["body"], headers=headers)
        long = httpx.post(
            vonage.url("/sms/json"),
            data={
                "to": "447700900000",
                "from": "Acme",
                "text": "x" * 200,
                "api_key": "abcd1234",
                "api_secret": "abcdef0123456789",
            },
        )

    assert short.status_code == 200
    assert short.json()["messages"][0]["status"] == "0"
    # The contract's oneOf of SMS and Error cannot tell them apart: both match any reply.
    assert [p for p in conforms(vonage, "post /{format}", short) if "is valid under each of" not in p] == []
    assert long.json()["message-count"] == "2"
    assert len(vonage.messages) == 3
    vonage.assert_no_violations()


def test_vonage_reports_errors_inside_http_200() -> None:
    with VonageImitation() as vonage:
        missing = httpx.post(
            vonage.url("/sms/json"), data={"from": "Acme", "text": "Hi"}, auth=("abcd1234", "abcdef0123456789")
        )
        bad_key = httpx.post(
            vonage.url("/sms/json"),
            data={"to": "447700900000", "from": "A", "text": "Hi"},
            auth=("abcd1234", "wrongsecret"),
        )

    assert missing.status_code == 200
    assert missing.json()["messages"][0] == {"status": "2", "error-text": "Missing to param"}
    assert bad_key.json()["messages"][0] == {"status": "4", "error-text": "Bad Credentials"}
    assert len(vonage.violations) == 1


# -- Lob ---------------------------------------------------------------------------------------------


def lob_post(lob: LobImitation, path: str, body: dict[str, Any], **headers: str) -> httpx.Response:
    return httpx.post(lob.url(path), json=body, auth=("test_0123456789abcdef", ""), headers=headers)


def test_lob_accepts_the_official_sdk_request_once_per_idempotency_key() -> None:
    sdk = oracle("lob_create_postcard.json")
    key = sdk["headers"]["Idempotency-Key"]
    with LobImitation() as lob:
        first = lob_post(lob, "/v1/postcards", sdk["body"], **{"Idempotency-Key": key})
        again = lob_post(lob, "/v1/postcards", sdk["body"], **{"Idempotency-Key": key})
        other = lob_post(lob, "/v1/postcards", sdk["body"])

    assert first.status_code == 200
    postcard = first.json()
    assert postcard["id"].startswith("psc_")
    assert postcard["to"]["address_city"] == "SAN FRANCISCO"
    assert postcard["expected_delivery_date"] > postcard["send_date"][:10]
    assert again.json() == postcard
    assert other.json()["id"] != postcard["id"]
    assert len(lob.postcards) == 2
    assert [p for p in conforms(lob, "post /postcards", first) if "lob-assets.com" not in p] == []
    lob.assert_no_violations()


def test_lob_answers_422_for_an_invalid_postcard_and_verifies_addresses() -> None:
    body = {k: v for k, v in oracle("lob_create_postcard.json")["body"].items() if k != "to"}
    with LobImitation() as lob:
        refused = lob_post(lob, "/v1/postcards", body)
        verified = lob_post(lob, "/v1/us_verifications", {"primary_line": "210 King St", "zip_code": "94107"})
        undeliverable = lob_post(lob, "/v1/us_verifications", {"primary_line": "undeliverable", "zip_code": "94107"})
        letter = lob_post(
            lob,
            "/v1/letters",
            {
                **body,
                "to": oracle("lob_create_postcard.json")["body"]["to"],
                "from": "adr_1234",
                "file": "<html>Hi</html>",
                "color": False,
            },
        )
        missing = httpx.get(lob.url("/v1/letters/ltr_0000"), auth=("test_0123456789abcdef", ""))

    assert refused.status_code == 422
    assert refused.json() == {"error": {"message": "to is required", "status_code": 422, "code": "invalid"}}
    assert verified.json()["deliverability"] == "deliverable"
    assert conforms(lob, "post /us_verifications", verified) == []
    assert undeliverable.json()["deliverability"] == "undeliverable"
    assert letter.json()["id"].startswith("ltr_")
    assert missing.json()["error"]["code"] == "not_found"
    assert len(lob.violations) == 1


def test_lob_verifies_international_addresses_and_refuses_countries_it_does_not_mail_to() -> None:
    address = {"primary_line": "370 Water St", "city": "Summerside", "state": "PE", "postal_code": "C1N 1C4",
               "country": "CA"}
    with LobImitation() as lob:
        verified = lob_post(lob, "/v1/intl_verifications", address)
        no_match = lob_post(lob, "/v1/intl_verifications", {**address, "primary_line": "no_match"})
        refused = lob_post(lob, "/v1/intl_verifications", {**address, "country": "US"})

    assert verified.json()["deliverability"] == "deliverable" and verified.json()["country"] == "CA"
    assert verified.json()["components"]["postal_code"] == "C1N 1C4"
    assert conforms(lob, "post /intl_verifications", verified) == []
    assert no_match.json()["deliverability"] == "no_match"
    assert refused.status_code == 422  # US addresses go to the US verification
    assert len(lob.violations) == 1


# -- Square ------------------------------------------------------------------------------------------


@pytest.fixture
def square() -> Iterator[SquareImitation]:
    with SquareImitation() as server:
        yield server


def square_post(
    square: SquareImitation, path: str, body: dict[str, Any], version: str = "2026-09-16"
) -> httpx.Response:
    headers = {"Authorization": "Bearer EAAAl-test", "Square-Version": version}
    return httpx.post(square.url(path), json=body, headers=headers)


def test_square_accepts_the_official_sdk_payment_and_honours_idempotency(square: SquareImitation) -> None:
    sdk = oracle("square_create_payment.json")
    first = square_post(square, "/v2/payments", sdk["body"])
    again = square_post(square, "/v2/payments", sdk["body"])
    reused = square_post(square, "/v2/payments", {**sdk["body"], "amount_money": {"amount": 5, "currency": "USD"}})

    assert first.json()["payment"]["status"] == sdk["parsed_status"]
    assert again.json() == first.json()
    assert len(square.payments) == 1
    assert conforms(square, "post /v2/payments", first) == []
    assert reused.status_code == 400
    assert reused.json()["errors"][0]["code"] == "IDEMPOTENCY_KEY_REUSED"


def test_square_creates_and_retrieves_orders(square: SquareImitation) -> None:
    order = {
        "location_id": "LMAIN0000001",
        "line_items": [{"name": "Mug", "quantity": "2", "base_price_money": {"amount": 1500, "currency": "USD"}}],
    }
    created = square_post(square, "/v2/orders", {"idempotency_key": "k1", "order": order})
    order_id = created.json()["order"]["id"]
    fetched = httpx.get(
        square.url(f"/v2/orders/{order_id}"),
        headers={"Authorization": "Bearer EAAAl-test", "Square-Version": "2026-09-16"},
    )

    assert created.json()["order"]["total_money"] == {"amount": 3000, "currency": "USD"}
    assert conforms(square, "post /v2/orders", created) == []
    assert fetched.json() == created.json()
    square.assert_no_violations()


@pytest.mark.parametrize(
    ("body", "version", "code", "field"),
    [
        ({"source_id": "cnon:card-nonce-ok"}, "2026-09-16", "MISSING_REQUIRED_PARAMETER", "idempotency_key"),
        (
            {"source_id": "cnon:card-nonce-ok", "idempotency_key": "k"},
            "latest",
            "INVALID_SQUARE_VERSION_FORMAT",
            "Square-Version",
        ),
    ],
)
def test_square_rejects_malformed_requests(
    square: SquareImitation, body: dict[str, Any], version: str, code: str, field: str
) -> None:
    response = square_post(square, "/v2/payments", body, version)

    assert response.status_code == 400
    assert response.json()["errors"][0] | {"detail": ""} == {
        "category": "INVALID_REQUEST_ERROR",
        "code": code,
        "detail": "",
        "field": field,
    }
    assert len(square.violations) == 1


def test_square_declines_the_sandbox_decline_nonce(square: SquareImitation) -> None:
    response = square_post(
        square,
        "/v2/payments",
        {
            "source_id": "cnon:card-nonce-declined",
            "idempotency_key": "d",
            "amount_money": {"amount": 100, "currency": "USD"},
        },
    )

    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "GENERIC_DECLINE"
    assert response.json()["payment"]["status"] == "FAILED"
    assert square.violations == []


def test_square_payments_complete_orders_and_take_stock(square: SquareImitation) -> None:
    square.set_stock("SKU-MUG", 5)
    line = {"catalog_object_id": "SKU-MUG", "quantity": "2", "base_price_money": {"amount": 1500, "currency": "USD"}}
    order = square_post(square, "/v2/orders", {"order": {"location_id": "LMAIN0000001", "line_items": [line]}})
    order_id = order.json()["order"]["id"]
    payment = {"source_id": "cnon:card-nonce-ok", "idempotency_key": "p1", "order_id": order_id}
    square_post(square, "/v2/payments", {**payment, "amount_money": {"amount": 3000, "currency": "USD"}})
    fetched = httpx.get(
        square.url(f"/v2/orders/{order_id}"),
        headers={"Authorization": "Bearer EAAAl-test", "Square-Version": "2026-09-16"},
    )

    assert fetched.json()["order"]["state"] == "COMPLETED"
    assert conforms(square, "get /v2/orders/{order_id}", fetched) == []
    assert square.stock[("SKU-MUG", "LMAIN0000001")] == 3
    square.assert_no_violations()


def test_square_inventory_counts_come_from_seeded_stock(square: SquareImitation) -> None:
    square.set_stock("SKU-MUG", 3)
    square.set_stock("SKU-MUG", 7, location_id="LSTORE2")
    square.set_stock("SKU-CAP", 1)

    response = square_post(
        square, "/v2/inventory/counts/batch-retrieve", {"catalog_object_ids": ["SKU-MUG"], "location_ids": ["LSTORE2"]}
    )
    refused = square_post(square, "/v2/inventory/counts/batch-retrieve", {"catalog_object_ids": "SKU-MUG"})

    counts = response.json()["counts"]
    assert [(c["catalog_object_id"], c["location_id"], c["quantity"], c["state"]) for c in counts] == [
        ("SKU-MUG", "LSTORE2", "7", "IN_STOCK")
    ]
    assert refused.status_code == 400
    assert len(square.violations) == 1


# -- Meta --------------------------------------------------------------------------------------------

WHATSAPP = "/v23.0/1234567890/messages"


@pytest.fixture
def meta() -> Iterator[MetaGraphImitation]:
    with MetaGraphImitation() as server:
        yield server


def graph_post(meta: MetaGraphImitation, path: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(meta.url(path), json=body, headers={"Authorization": "Bearer EAAG-test"})


def test_whatsapp_answers_with_responses_the_contract_accepts(meta: MetaGraphImitation) -> None:
    text = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "+16505551234",
        "type": "text",
        "text": {"body": "Your order shipped"},
    }
    template = {
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": "16505551234",
        "type": "template",
        "template": {"name": "order_update", "language": {"code": "en_US", "policy": "deterministic"}},
    }

    responses = [graph_post(meta, WHATSAPP, body) for body in (text, template)]

    assert [r.status_code for r in responses] == [200, 200]
    assert responses[0].json()["contacts"] == [{"input": "+16505551234", "wa_id": "16505551234"}]
    assert responses[0].json()["messages"][0]["id"].startswith("wamid.")
    for response in responses:
        assert conforms(meta, "post /{Version}/{Phone-Number-ID}/messages", response) == []
    assert meta.warnings == [] and meta.violations == []


def test_whatsapp_checks_loosely_but_refuses_what_the_cloud_api_refuses(meta: MetaGraphImitation) -> None:
    odd = {"messaging_product": "whatsapp", "to": "16505551234", "type": "text", "text": {"body": "Hi"}}
    accepted = graph_post(meta, WHATSAPP, odd)
    refused = graph_post(meta, WHATSAPP, {"to": "16505551234", "type": "text", "text": {"body": "Hi"}})

    assert accepted.status_code == 200
    assert len(meta.warnings) == 2  # the refused request did not match the contract either
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == 100
    assert refused.json()["error"]["type"] == "OAuthException"
    assert len(meta.violations) == 1


def test_messenger_sends_and_reports_unreachable_people(meta: MetaGraphImitation) -> None:
    meta.unreachable.add("999")
    body = {"recipient": {"id": "123"}, "messaging_type": "UPDATE", "message": {"text": "Back in stock"}}

    sent = graph_post(meta, "/v23.0/me/messages", body)  # the token in a header: httpx logs query strings
    gone = graph_post(meta, "/v23.0/me/messages", {**body, "recipient": {"id": "999"}})
    malformed = graph_post(meta, "/v23.0/me/messages", {**body, "message": {"txt": "typo"}})

    assert sent.json()["recipient_id"] == "123"
    assert sent.json()["message_id"].startswith("m_")
    assert (gone.status_code, gone.json()["error"]["code"]) == (400, 551)
    assert malformed.status_code == 400
    assert [p.field for v in meta.violations for p in v.problems] == ["message.txt"]


def test_custom_audiences_take_sha256_hashes(meta: MetaGraphImitation) -> None:
    ada = hashlib.sha256(b"ada@example.com").hexdigest()
    payload = {"schema": "EMAIL_SHA256", "data": [ada, "ada@example.com"]}

    added = graph_post(meta, "/v23.0/6000000001/users", {"payload": payload})
    removed = httpx.request(
        "DELETE",
        meta.url("/v23.0/6000000001/users"),
        data={"payload": json.dumps({"schema": ["EMAIL_SHA256"], "data": [[ada]]}), "access_token": "EAAG-test"},
    )

    assert added.json()["num_received"] == 2
    assert added.json()["num_invalid_entries"] == 1
    assert removed.json()["num_invalid_entries"] == 0
    assert meta.audiences["6000000001"] == set()
    meta.assert_no_violations()


# -- FCM ---------------------------------------------------------------------------------------------


def google_assertion(fcm: FCMImitation, **claims: Any) -> str:
    info = fcm.service_account_info
    key = serialization.load_pem_private_key(info["private_key"].encode(), password=None)
    assert isinstance(key, rsa.RSAPrivateKey)
    now = int(time.time())
    payload = {
        "iss": info["client_email"],
        "scope": "https://www.googleapis.com/auth/firebase.messaging",
        "aud": info["token_uri"],
        "iat": now,
        "exp": now + 3600,
        **claims,
    }
    signing_input = (
        f"{b64url(json.dumps({'alg': 'RS256', 'typ': 'JWT'}).encode())}.{b64url(json.dumps(payload).encode())}"
    )
    signature = key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input}.{b64url(signature)}"


@pytest.fixture
def fcm() -> Iterator[FCMImitation]:
    with FCMImitation() as server:
        yield server


def fcm_token(fcm: FCMImitation, **claims: Any) -> httpx.Response:
    grant = {"grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer", "assertion": google_assertion(fcm, **claims)}
    return httpx.post(fcm.service_account_info["token_uri"], data=grant)


def fcm_send(fcm: FCMImitation, body: dict[str, Any], token: str) -> httpx.Response:
    return httpx.post(
        fcm.url("/v1/projects/demo-project/messages:send"), json=body, headers={"Authorization": f"Bearer {token}"}
    )


def test_fcm_issues_tokens_and_accepts_the_official_sdk_message(fcm: FCMImitation) -> None:
    token = fcm_token(fcm).json()

    response = fcm_send(fcm, oracle("fcm_v1_send_body.json"), token["access_token"])

    assert token["token_type"] == "Bearer" and token["expires_in"] == 3599
    assert response.status_code == 200
    assert response.json()["name"].startswith("projects/demo-project/messages/")
    assert fcm.messages[0]["token"] == "fcm-token-123"
    fcm.assert_no_violations()


def test_fcm_token_endpoint_checks_the_assertion(fcm: FCMImitation) -> None:
    expired = fcm_token(fcm, iat=0, exp=7200)
    forged = fcm_token(fcm, iss="someone@else.iam.gserviceaccount.com")
    tampered = httpx.post(
        fcm.url("/token"),
        data={
            "grant_type": "urn:ietf:params:oauth:grant-type:jwt-bearer",
            "assertion": google_assertion(fcm)[:-4] + "AAAA",
        },
    )

    assert [r.json()["error"] for r in (expired, forged, tampered)] == ["invalid_grant"] * 3
    assert fcm.access_tokens == set()


def test_fcm_rejects_unknown_fields_and_dead_tokens(fcm: FCMImitation) -> None:
    token = fcm_token(fcm).json()["access_token"]
    fcm.unregister("dead-token")

    unknown = fcm_send(fcm, {"message": {"token": "t", "notification": {"titel": "typo"}}}, token)
    two_targets = fcm_send(fcm, {"message": {"token": "t", "topic": "news"}}, token)
    dead = fcm_send(fcm, {"message": {"token": "dead-token"}}, token)
    fcm.revoke_access_tokens()
    revoked = fcm_send(fcm, {"message": {"token": "t"}}, token)

    assert unknown.status_code == 400
    assert unknown.json()["error"]["status"] == "INVALID_ARGUMENT"
    assert unknown.json()["error"]["message"] == (
        "Invalid JSON payload received. Unknown name \"titel\" at 'message.notification': Cannot find field."
    )
    assert two_targets.status_code == 400
    assert dead.status_code == 404
    assert dead.json()["error"]["details"][0]["errorCode"] == "UNREGISTERED"
    assert revoked.status_code == 401
    assert len(fcm.violations) == 2


def test_fcm_accepts_snake_case_field_names(fcm: FCMImitation) -> None:
    token = fcm_token(fcm).json()["access_token"]
    body = {
        "message": {
            "topic": "news",
            "android": {"collapse_key": "k", "notification": {"click_action": "OPEN"}},
            "fcm_options": {"analytics_label": "l"},
        }
    }

    assert fcm_send(fcm, body, token).status_code == 200
    fcm.assert_no_violations()


# -- Web Push ----------------------------------------------------------------------------------------

RFC8291_PLAINTEXT = b"When I grow up, I want to be a watermelon"
RFC8291 = {
    "as_private": "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw",
    "ua_private": "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94",
    "ua_public": "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4",
    "auth": "BTBZMqHH6r4Tts7J_aSIgg",
    "salt": "DGv6ra1nlYgDCS1FRnbzlw",
    "body": "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8w"
    "EqKK6PBru3jl7A_yl95bQpu6cVPTpK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN",
}


def private_key(raw: str) -> ec.EllipticCurvePrivateKey:
    return ec.derive_private_key(int.from_bytes(b64url_decode(raw), "big"), ec.SECP256R1())


def public_bytes(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def encrypt(
    plaintext: bytes, subscription: dict[str, Any], *, salt: bytes, sender: ec.EllipticCurvePrivateKey
) -> bytes:
    """RFC 8291 encryption, as an application server does it."""
    receiver = b64url_decode(subscription["keys"]["p256dh"])
    shared = sender.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), receiver))
    info = b"WebPush: info\x00" + receiver + public_bytes(sender)
    ikm = HKDF(hashes.SHA256(), 32, b64url_decode(subscription["keys"]["auth"]), info).derive(shared)
    key = HKDF(hashes.SHA256(), 16, salt, b"Content-Encoding: aes128gcm\x00").derive(ikm)
    nonce = HKDF(hashes.SHA256(), 12, salt, b"Content-Encoding: nonce\x00").derive(ikm)
    header = salt + (4096).to_bytes(4, "big") + bytes([65]) + public_bytes(sender)
    return header + AESGCM(key).encrypt(nonce, plaintext + b"\x02", None)


def vapid(audience: str, key: ec.EllipticCurvePrivateKey, **claims: Any) -> str:
    payload = {"aud": audience, "exp": int(time.time()) + 3600, "sub": "mailto:ops@example.com", **claims}
    signing_input = (
        f"{b64url(json.dumps({'typ': 'JWT', 'alg': 'ES256'}).encode())}.{b64url(json.dumps(payload).encode())}"
    )
    r, s = decode_dss_signature(key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
    signature = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return f"vapid t={signing_input}.{b64url(signature)}, k={b64url(public_bytes(key))}"


def test_web_push_encryption_matches_rfc_8291() -> None:
    subscription = {"keys": {"p256dh": RFC8291["ua_public"], "auth": RFC8291["auth"]}}
    body = encrypt(
        RFC8291_PLAINTEXT,
        subscription,
        salt=b64url_decode(RFC8291["salt"]),
        sender=private_key(RFC8291["as_private"]),
    )

    assert b64url(body) == RFC8291["body"]
    ua = private_key(RFC8291["ua_private"])
    assert decrypt_aes128gcm(body, ua, b64url_decode(RFC8291["auth"])) == RFC8291_PLAINTEXT


@pytest.mark.parametrize(
    ("authorization", "audience"),
    [
        (oracle("webpush_request.json")["vapid_headers"]["Authorization"], "https://updates.push.services.mozilla.com"),
        (  # RFC 8292 section 2.4
            "vapid t=eyJ0eXAiOiJKV1QiLCJhbGciOiJFUzI1NiJ9.eyJhdWQiOiJodHRwczovL3B1c2guZXhhbXBsZS5uZXQiLCJleHAiOjE0NT"
            "M1MjM3NjgsInN1YiI6Im1haWx0bzpwdXNoQGV4YW1wbGUuY29tIn0.i3CYb7t4xfxCDquptFOepC9GAu_HLGkMlMuCGSK2rpiUfnK9ojFw"
            "DXb1JrErtmysazNjjvW2L9OkSSHzvoD1oA, k=BA1Hxzyi1RUM1b5wjxsn7nGxAszw2u61m164i3MrAIxHF6YK5h4SDYic-dRuU_RCPC"
            "fA5aq9ojSwk5Y2EmClBPs",
            "https://push.example.net",
        ),
    ],
)
def test_vapid_tokens_from_the_official_library_and_the_rfc_verify(authorization: str, audience: str) -> None:
    fields = dict(part.strip().split("=", 1) for part in authorization.removeprefix("vapid ").split(","))
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(fields["k"]))

    _, claims = verify_jwt(fields["t"], key)

    assert claims["aud"] == audience
    with pytest.raises(BadToken):
        verify_jwt(fields["t"][:-2] + "AA", key)


def test_web_push_accepts_encrypted_vapid_signed_messages() -> None:
    app_key = ec.generate_private_key(ec.SECP256R1())
    with WebPushImitation(vapid_public_key=b64url(public_bytes(app_key))) as push:
        subscription = push.subscribe()
        info = subscription.info()
        body = encrypt(b'{"title":"hi"}', info, salt=b"s" * 16, sender=ec.generate_private_key(ec.SECP256R1()))
        headers = {
            "TTL": "60",
            "Content-Encoding": "aes128gcm",
            "Urgency": "high",
            "Authorization": vapid(push.base_url, app_key),
        }
        created = httpx.post(info["endpoint"], content=body, headers=headers)
        origin = push.base_url
        push.unsubscribe(subscription)
        gone = httpx.post(info["endpoint"], content=body, headers=headers)

    assert created.status_code == 201
    assert created.headers["Location"].startswith(origin)
    assert push.received[0].decrypt() == b'{"title":"hi"}'
    assert push.received[0].claims["sub"] == "mailto:ops@example.com"
    assert (push.received[0].ttl, push.received[0].urgency) == (60, "high")
    assert gone.status_code == 410
    push.assert_no_violations()


def test_web_push_refuses_bad_vapid_and_missing_ttl() -> None:
    with WebPushImitation() as push:
        info = push.subscribe().info()
        key = ec.generate_private_key(ec.SECP256R1())
        wrong_audience = httpx.post(info["endpoint"], headers={"TTL": "0", "Authorization": vapid("https://x", key)})
        no_ttl = httpx.post(info["endpoint"], headers={"Authorization": vapid(push.base_url, key)})
        forged = vapid(push.base_url, key).replace(
            b64url(public_bytes(key)), b64url(public_bytes(ec.generate_private_key(ec.SECP256R1())))
        )
        bad_signature = httpx.post(info["endpoint"], headers={"TTL": "0", "Authorization": forged})

    assert [r.status_code for r in (wrong_audience, no_ttl, bad_signature)] == [401, 400, 401]
    assert no_ttl.json()["errno"] == 111
    assert len(push.violations) == 3


# -- faults ------------------------------------------------------------------------------------------


def test_rate_limit_faults_carry_retry_after() -> None:
    twilio = TwilioImitation(faults=Faults(rate_limit=1.0, retry_after=7))
    with twilio, httpx.Client(auth=(TWILIO_SID, "authtoken")) as client:
        response = client.post(twilio.url(MESSAGES), data={})

    assert response.status_code == 429
    assert response.headers["Retry-After"] == "7"
    assert response.json()["code"] == 20429
    assert twilio.requests[0].fault == "rate_limit"
    assert twilio.violations == []


def test_fail_next_is_deterministic() -> None:
    faults = Faults()
    faults.fail_next(2, "unavailable")
    faults.fail_next(1, "server_error")
    form = {"To": "+15558675310", "From": "+15017122661", "Body": "Hi"}
    with TwilioImitation(faults=faults) as twilio, httpx.Client(auth=(TWILIO_SID, "authtoken")) as client:
        statuses = [client.post(twilio.url(MESSAGES), data=form).status_code for _ in range(4)]
        body = client.post(twilio.url(MESSAGES), data={}).json()

    assert statuses == [503, 503, 500, 201]
    assert faults.injected == ["unavailable", "unavailable", "server_error"]
    assert body["code"] == 21604


def test_server_errors_use_each_providers_error_shape() -> None:
    with SquareImitation(faults=Faults(server_error=1.0, seed=3)) as square:
        response = square_post(square, "/v2/payments", {})

    assert response.status_code in (500, 503)
    assert response.json()["errors"][0]["category"] == "API_ERROR"


def test_dropped_connections_reach_the_client_as_protocol_errors() -> None:
    faults = Faults()
    faults.fail_next(1, "drop")
    with SendGridImitation(faults=faults) as sendgrid, httpx.Client() as client:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            client.post(sendgrid.url("/v3/mail/send"), json={})
        after = client.post(sendgrid.url("/v3/mail/send"), json={}, headers={"Authorization": "Bearer SG.test-key"})

    assert after.status_code == 400
    assert [r.fault for r in sendgrid.requests] == ["drop", None]


def test_slow_responses_still_answer() -> None:
    faults = Faults(slow=1.0, delay=0.01)
    with SendGridImitation(faults=faults) as sendgrid:
        response = httpx.post(
            sendgrid.url("/v3/mail/send"),
            json=oracle("sendgrid_mail_send_body.json"),
            headers={"Authorization": "Bearer SG.test-key"},
        )

    assert response.status_code == 202
    assert faults.injected == ["slow"]


def test_random_faults_repeat_for_the_same_seed() -> None:
    def draws(seed: int) -> list[str | None]:
        faults = Faults(rate_limit=0.2, server_error=0.2, drop=0.1, slow=0.1, seed=seed)
        return [faults.draw() for _ in range(200)]

    first = draws(42)
    assert first == draws(42)
    assert first != draws(43)
    assert {"rate_limit", "server_error", "unavailable", "drop", "slow", None} == set(first)


def test_faults_refuse_impossible_probabilities() -> None:
    with pytest.raises(ValueError, match="probability"):
        Faults(rate_limit=1.5)
    with pytest.raises(ValueError, match="more than 1"):
        Faults(rate_limit=0.6, server_error=0.6)


# -- the server itself -------------------------------------------------------------------------------


def test_validation_can_be_switched_off_for_throughput() -> None:
    form = {"To": "+15558675310", "From": "+15017122661", "Body": "Hi", "ValidityPeriod": "soon"}
    with TwilioImitation(validate=False) as twilio:
        response = httpx.post(twilio.url(MESSAGES), data=form, auth=(TWILIO_SID, "authtoken"))

    assert response.status_code == 201
    assert twilio.violations == []


def test_async_tests_use_the_same_servers() -> None:
    async def scenario() -> list[int]:
        async with SendGridImitation() as sendgrid, httpx.AsyncClient(base_url=sendgrid.base_url) as client:
            headers = {"Authorization": "Bearer SG.test-key"}
            body = oracle("sendgrid_mail_send_body.json")
            responses = await asyncio.gather(
                *(client.post("/v3/mail/send", json=body, headers=headers) for _ in range(20))
            )
            return [r.status_code for r in responses]

    assert asyncio.run(scenario()) == [202] * 20


def test_start_and_stop_by_hand() -> None:
    sendgrid = SendGridImitation().start()
    sendgrid.stop()
    sendgrid.start()
    url = sendgrid.base_url
    sendgrid.stop()

    with pytest.raises(httpx.ConnectError):
        httpx.post(url + "/v3/mail/send", json={})
    with pytest.raises(RuntimeError, match="not started"):
        _ = sendgrid.base_url


def test_operations_the_api_does_not_have_are_violations(twilio: TwilioImitation) -> None:
    wrong_method = httpx.delete(twilio.url(MESSAGES), auth=(TWILIO_SID, "authtoken"))
    unknown = httpx.post(twilio.url("/2010-04-01/Accounts.json"), auth=(TWILIO_SID, "authtoken"))

    assert [r.status_code for r in (wrong_method, unknown)] == [404, 404]
    assert wrong_method.json()["code"] == 20404
    assert [v.method for v in twilio.violations] == ["DELETE", "POST"]


def test_a_fixed_port_and_the_command_line_serve_demos() -> None:
    with TwilioImitation() as probe:
        port = int(probe.base_url.rsplit(":", 1)[1])  # a port that was free a moment ago
    command = [sys.executable, "-m", "omnisdk.testing.imitations", f"twilio:{port}", "sendgrid"]
    with subprocess.Popen(command, stdout=subprocess.PIPE, text=True) as served:
        assert served.stdout is not None
        urls = dict(served.stdout.readline().split() for _ in range(2))
        response = httpx.post(urls["twilio"] + MESSAGES, data={}, auth=(TWILIO_SID, "authtoken"))
        served.send_signal(signal.SIGINT)

    assert urls["twilio"] == f"http://127.0.0.1:{port}"
    assert response.json()["code"] == 21604
    assert served.returncode == 0


def test_malformed_json_is_a_violation() -> None:
    with SendGridImitation() as sendgrid:
        response = httpx.post(
            sendgrid.url("/v3/mail/send"),
            content=b"{nope",
            headers={"Authorization": "Bearer SG.test-key", "Content-Type": "application/json"},
        )

    assert response.status_code == 400
    assert sendgrid.violations[0].problems[0].reason == "malformed"


def test_public_names_are_exported_sorted() -> None:
    assert imitations.__all__ == sorted(imitations.__all__)
    assert all(hasattr(imitations, name) for name in imitations.__all__)


# -- the compiled contracts give openapi-core's verdicts ---------------------------------------------


class _CoreRequest:
    def __init__(self, host: str, path: str, method: str, headers: dict[str, str], body: bytes, content_type: str):
        from openapi_core.datatypes import RequestParameters
        from werkzeug.datastructures import Headers, ImmutableMultiDict

        self.host_url, self.path, self.method, self.body, self.content_type = host, path, method, body, content_type
        self.parameters = RequestParameters(
            query=ImmutableMultiDict(), header=Headers(headers), cookie=ImmutableMultiDict()
        )

    @property
    def full_url_pattern(self) -> str:
        return self.host_url + self.path


TWILIO_FORM = "To=%2B15558675310&From=%2B15017122661&Body=Hi"
BASIC = "Basic " + base64.b64encode(f"{TWILIO_SID}:authtoken".encode()).decode()
DIFFERENTIAL = [
    (
        "twilio_messages.json",
        "https://api.twilio.com",
        MESSAGES,
        TWILIO_FORM,
        "application/x-www-form-urlencoded",
        {"Authorization": BASIC},
        True,
    ),
    (
        "twilio_messages.json",
        "https://api.twilio.com",
        MESSAGES,
        "From=x&Body=Hi",
        "application/x-www-form-urlencoded",
        {"Authorization": BASIC},
        False,
    ),
    (
        "twilio_messages.json",
        "https://api.twilio.com",
        MESSAGES,
        TWILIO_FORM + "&ValidityPeriod=x",
        "application/x-www-form-urlencoded",
        {"Authorization": BASIC},
        False,
    ),
    (
        "sendgrid_mail_send.json",
        "https://api.sendgrid.com",
        "/v3/mail/send",
        json.dumps(oracle("sendgrid_mail_send_body.json")),
        "application/json",
        {"Authorization": "Bearer k"},
        True,
    ),
    (
        "sendgrid_mail_send.json",
        "https://api.sendgrid.com",
        "/v3/mail/send",
        '{"from": {"email": "a@b.c"}}',
        "application/json",
        {"Authorization": "Bearer k"},
        False,
    ),
    (
        "lob_print_mail.json",
        "https://api.lob.com",
        "/v1/postcards",
        json.dumps(oracle("lob_create_postcard.json")["body"]),
        "application/json",
        {"Authorization": BASIC},
        True,
    ),
    (
        "lob_print_mail.json",
        "https://api.lob.com",
        "/v1/postcards",
        '{"front": "x", "back": "y"}',
        "application/json",
        {"Authorization": BASIC},
        False,
    ),
    (
        "square_orders_payments.json",
        "https://connect.squareup.com",
        "/v2/payments",
        json.dumps(oracle("square_create_payment.json")["body"]),
        "application/json",
        {"Authorization": "Bearer k", "Square-Version": "2026-09-16"},
        True,
    ),
    (
        "square_orders_payments.json",
        "https://connect.squareup.com",
        "/v2/payments",
        '{"source_id": ""}',
        "application/json",
        {"Authorization": "Bearer k"},
        False,
    ),
]


@pytest.mark.filterwarnings("ignore:Unsupported scheme type")  # openapi-core and Square's oauth2 scheme
@pytest.mark.parametrize(("name", "host", "path", "body", "content_type", "headers", "valid"), DIFFERENTIAL)
def test_compiled_contracts_agree_with_openapi_core(
    name: str, host: str, path: str, body: str, content_type: str, headers: dict[str, str], valid: bool
) -> None:
    core = openapi_core.OpenAPI.from_dict(json.loads((CONTRACTS / name).read_text()))
    verdict = core.unmarshal_request(_CoreRequest(host, path, "post", headers, body.encode(), content_type))

    problems = served_problems(name, path, body, content_type, headers)

    assert (verdict.errors == [], problems == []) == (valid, valid), (verdict.errors, problems)


def served_problems(name: str, path: str, body: str, content_type: str, headers: dict[str, str]) -> list[str]:
    """Send the request to an imitation serving only the contract's operation, and collect violations."""

    class Probe(Imitation):
        contract = name
        spec_path = path.replace(TWILIO_SID, "{AccountSid}")

        @route("POST", path.replace(TWILIO_SID, "{AccountSid}"), check=f"post {spec_path.removeprefix('/v1')}")
        def probe(self, call: Call) -> web.StreamResponse:
            return web.Response()

    with Probe() as probe:
        httpx.post(probe.url(path), content=body, headers={**headers, "Content-Type": content_type})
    return [str(p) for v in probe.violations for p in v.problems]
