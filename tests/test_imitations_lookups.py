"""The imitations' lookup endpoints (what reconciliation asks), their contracts, and the two drops a
client cannot tell apart: before the provider acted on a send, and after it accepted it."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from omnisdk import VirtualClock
from omnisdk.testing.imitations import (
    Faults,
    MailgunImitation,
    SendGridImitation,
    TwilioImitation,
    VonageImitation,
    contract,
)

SID = "AC" + "a" * 32


def twilio_send(api: TwilioImitation, client: httpx.Client, body: str = "hi") -> httpx.Response:
    return client.post(api.url(f"/2010-04-01/Accounts/{SID}/Messages.json"), auth=(SID, api.auth_token),
                       data={"To": "+14155550100", "From": "+15017122661", "Body": body})


def checked(contract_file: str, operation: str, response: httpx.Response) -> Any:
    """The answer's JSON, after checking it against the operation's declared response."""
    body = response.json()
    assert contract(contract_file).operation(operation).response_problems(response.status_code, body) == []
    return body


def test_the_drop_patterns_are_deterministic_and_count_sending_calls_only() -> None:
    faults = Faults(drop_before_send=3, drop_after_accept=4)
    with TwilioImitation(faults=faults) as api, httpx.Client() as client:
        outcomes = []
        for n in range(12):
            try:
                outcomes.append(twilio_send(api, client, f"m{n}").status_code)
            except httpx.TransportError:
                outcomes.append(None)
            client.get(api.url(f"/2010-04-01/Accounts/{SID}/Messages.json"), auth=(SID, api.auth_token))
    # sends 3, 6, 9, 12 dropped before; 4 and 8 dropped after (12 is both: before wins)
    assert [n for n, o in enumerate(outcomes, 1) if o is None] == [3, 4, 6, 8, 9, 12]
    assert faults.injected == ["drop_before_send", "drop_after_accept", "drop_before_send", "drop_after_accept",
                               "drop_before_send", "drop_before_send"]
    assert [m["body"] for m in api.messages] == ["m0", "m1", "m3", "m4", "m6", "m7", "m9", "m10"]  # 4 and 8 kept


def test_faults_refuse_a_negative_period() -> None:
    with pytest.raises(ValueError, match="drop_after_accept"):
        Faults(drop_after_accept=-1)


def test_twilio_lists_newest_first_in_pages_stamped_by_the_clock() -> None:
    clock = VirtualClock()
    with TwilioImitation(clock=clock) as api, httpx.Client() as client:
        for n in range(5):
            twilio_send(api, client, f"m{n}")
            clock.advance(seconds=1)
        url = api.url(f"/2010-04-01/Accounts/{SID}/Messages.json?To=%2B14155550100&PageSize=2")
        bodies, pages = [], 0
        while url:
            page = checked("twilio_messages.json", "get /2010-04-01/Accounts/{AccountSid}/Messages.json",
                           client.get(url, auth=(SID, api.auth_token)))
            bodies += [m["body"] for m in page["messages"]]
            url = api.url(page["next_page_uri"]) if page["next_page_uri"] else ""
            pages += 1
        too_big = client.get(api.url(f"/2010-04-01/Accounts/{SID}/Messages.json?PageSize=5000"),
                             auth=(SID, api.auth_token))
        # date_sent is empty while a message is queued: a DateSent bound leaves it out
        bounded = client.get(api.url(f"/2010-04-01/Accounts/{SID}/Messages.json?DateSent%3E=2026-01-01T00%3A00%3A00Z"),
                             auth=(SID, api.auth_token)).json()
    assert (bodies, pages) == (["m4", "m3", "m2", "m1", "m0"], 3)
    assert api.messages[0]["date_created"] == "Mon, 05 Jan 2026 12:00:00 +0000"
    assert too_big.status_code == 400 and len(api.violations) == 1
    assert bounded["messages"] == []


def test_vonage_reports_records_carry_the_client_ref_once_indexed() -> None:
    clock = VirtualClock()
    with VonageImitation(clock=clock, index_lag=60) as api, httpx.Client() as client:
        client.post(api.url("/sms/json"), data={"api_key": api.api_key, "api_secret": api.api_secret,
                                                "from": "AcmeShop", "to": "14155550100", "text": "hi",
                                                "client-ref": "dlv_1"})
        query = {"account_id": api.api_key, "product": "SMS", "direction": "outbound",
                 "date_start": "2026-01-05T11:59:00Z", "date_end": "2026-01-05T12:30:00Z"}
        records = api.url("/v2/reports/records")
        auth = (api.api_key, api.api_secret)
        early = client.get(records, params=query, auth=auth).json()
        clock.advance(seconds=60)
        later = checked("vonage_reports.json", "get /v2/reports/records", client.get(records, params=query, auth=auth))
        too_long = client.get(records, params={**query, "date_end": "2026-01-07T00:00:00Z"}, auth=auth)
        missing = client.get(records, params={"product": "SMS"}, auth=auth)
    assert early["records"] == []
    [record] = later["records"]
    assert (record["client_ref"], record["to"], "message_body" in record) == ("dlv_1", "14155550100", False)
    assert too_long.status_code == 422
    assert missing.status_code == 422 and [v.problems[0].field for v in api.violations] == ["account_id"]


def test_mailgun_events_filter_on_user_variables_and_page_on() -> None:
    clock = VirtualClock()
    with MailgunImitation(clock=clock) as api, httpx.Client() as client:
        for n in range(3):
            client.post(api.url("/v3/mg.acme.example/messages"), auth=("api", api.api_key),
                        data={"from": "shop@acme.example", "to": "ada@example.com", "subject": "s", "text": "t",
                              "v:omnisdk_delivery_id": f"dlv_{n}"})
        events = api.url("/v3/mg.acme.example/events")
        page = checked("mailgun_events.json", "get /v3/{domain_name}/events", client.get(
            events, auth=("api", api.api_key),
            params={"event": "accepted", "ascending": "yes", "limit": "1",
                    "user-variables": json.dumps({"omnisdk_delivery_id": "dlv_1"})}))
        following = client.get(page["paging"]["next"], auth=("api", api.api_key)).json()
        unfiltered = client.get(events, auth=("api", api.api_key), params={"ascending": "yes", "limit": "2"}).json()
        over_limit = client.get(events, auth=("api", api.api_key), params={"limit": "301"})
    assert [e["user-variables"]["omnisdk_delivery_id"] for e in page["items"]] == ["dlv_1"]
    assert following["items"] == []  # past the last event: an empty page ends the search
    assert [e["user-variables"]["omnisdk_delivery_id"] for e in unfiltered["items"]] == ["dlv_0", "dlv_1"]
    assert over_limit.status_code == 400 and len(api.violations) == 1


def test_sendgrid_email_activity_finds_a_personalization_by_its_custom_arg() -> None:
    with SendGridImitation() as api, httpx.Client() as client:
        mail = {"from": {"email": "shop@acme.example"}, "subject": "s",
                "content": [{"type": "text/plain", "value": "t"}],
                "personalizations": [{"to": [{"email": f"c{n}@example.com"}], "custom_args": {"d": f"dlv_{n}"}}
                                     for n in range(3)]}
        sent = client.post(api.url("/v3/mail/send"), json=mail, headers={"Authorization": f"Bearer {api.api_key}"})
        headers = {"Authorization": f"Bearer {api.api_key}"}
        found = checked("sendgrid_email_activity.json", "get /v3/messages", client.get(
            api.url("/v3/messages"), params={"query": "unique_args['d']=\"dlv_2\"", "limit": "10"}, headers=headers))
        bad = client.get(api.url("/v3/messages"), params={"query": "nonsense"}, headers=headers)
        no_query = client.get(api.url("/v3/messages"), headers=headers)
    [message] = found["messages"]
    assert message["to_email"] == "c2@example.com"
    assert message["msg_id"].split(".")[0] == sent.headers["X-Message-Id"]
    assert bad.status_code == 400 and no_query.status_code == 400
    assert [v.problems[0].field for v in api.violations] == ["query", "query"]
