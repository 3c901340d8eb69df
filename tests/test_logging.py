"""Secrets and personal data never reach a log line."""

from __future__ import annotations

import io
import json

import pytest
import structlog

from omnisdk import Omni, get_logger
from omnisdk._logging import redact_processor

SECRETS = ["ada@example.com", "+14155550100", "s3cr3t-token-value", "sk_live_abcdef"]


def test_omnisdk_log_lines_are_redacted_whatever_the_app_configured() -> None:
    out = io.StringIO()
    structlog.reset_defaults()
    structlog.configure(
        processors=[structlog.processors.JSONRenderer()],
        logger_factory=structlog.PrintLoggerFactory(file=out),
    )
    try:
        log = get_logger("omnisdk.test")
        log.info("sending to ada@example.com", to="+14155550100", auth_token="s3cr3t-token-value",
                 headers={"Authorization": "Bearer sk_live_abcdef"}, note="reply from +1 415 555 0100")
        log.bind(email="ada@example.com").warning("bounce", detail="mailbox ada@example.com full")
        with Omni("sqlite://:memory:") as omni:
            anon = omni.track({"anonymous_id": "a1"}, "Viewed").customer_id
            omni.identify("c-1", anonymous_id="a1", email="ada@example.com", phone="+14155550100")
    finally:
        structlog.reset_defaults()

    text = out.getvalue()
    assert "profiles_merged" in text and anon in text  # the lines were written…
    for secret in SECRETS:
        assert secret not in text  # …without the secrets
    for line in text.splitlines():
        json.loads(line)


def test_processor_for_the_apps_own_logs() -> None:
    event = redact_processor(None, "info", {"event": "login ada@example.com", "password": "hunter2",
                                            "items": [{"phone": "+14155550100"}], "count": 3})
    assert event == {"event": "login [email]", "password": "[redacted]", "items": [{"phone": "[redacted]"}],
                     "count": 3}


def test_configured_logging_writes_redacted_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    from omnisdk._logging import configure_logging

    configure_logging(json=True)
    try:
        get_logger("omnisdk.test").warning("reply from +14155550100", email="ada@example.com", count=2)
    finally:
        structlog.reset_defaults()
    [line] = capsys.readouterr().err.splitlines()
    record = json.loads(line)
    assert (record["event"], record["email"], record["count"], record["level"]) == (
        "reply from [phone]", "[redacted]", 2, "warning")


def test_ids_with_digit_runs_are_not_mistaken_for_phones() -> None:
    event = redact_processor(None, "info", {"event": "sent", "delivery_id": "dlv_0193ab45678901234cd",
                                            "note": "call (415) 555-0100 or +44 20 7946 0958"})
    assert event["delivery_id"] == "dlv_0193ab45678901234cd"
    assert event["note"] == "call ([phone] or [phone]"
