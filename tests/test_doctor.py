"""`omnisdk doctor` says what is wrong in plain words (exit 1), and `/readyz` agrees about the schema."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
import structlog

from omnisdk import Omni
from omnisdk.asgi import create_app
from omnisdk.cli import main
from omnisdk.health import latest_migration
from omnisdk.testing.imitations import TwilioImitation

SID = "AC" + "a" * 32


@pytest.fixture(autouse=True)
def _reset_logging() -> object:
    yield
    structlog.reset_defaults()


def doctor(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    code = main([*args, "doctor", "--no-resolve"])
    return code, capsys.readouterr().out


def toml(tmp_path: Path, text: str) -> str:
    path = tmp_path / "omnisdk.toml"
    path.write_text(text)
    return str(path)


def sms(base_url: str, **keys: str) -> str:
    lines = ['[channels.sms]', 'provider = "twilio"', f'base_url = "{base_url}"', 'from = "+14155550100"',
             *(f'{k} = "{v}"' for k, v in keys.items())]
    return "\n".join(lines) + "\n"


def test_a_healthy_setup_passes(store_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    Omni(store_url).close()
    with TwilioImitation() as twilio:
        config = toml(tmp_path, sms(twilio.base_url, account_sid=twilio.account_sid, auth_token=twilio.auth_token))
        code, out = doctor(capsys, "--store", store_url, "--config", config)
        assert any(r.path.endswith(f"/Accounts/{twilio.account_sid}.json") for r in twilio.requests)
    assert code == 0, out
    assert "No problems found." in out and "sms/twilio: credentials present and well-formed" in out
    assert f"schema version {latest_migration()} is current" in out


@pytest.mark.parametrize(("text", "said"), [
    ('[channels.sms]\nprovider = "twilio"\nacount_sid = "x"\n', "channels.sms.acount_sid: unknown key for provider"),
    ("[channels.sms\nprovider = 1\n", "invalid TOML"),
    ('[chanels.sms]\nprovider = "memory"\n', "chanels: unknown section"),
    ('[channels.sms]\nprovider = "twilio"\nauth_token = "${DOCTOR_TEST_UNSET}"\n',
     "environment variable DOCTOR_TEST_UNSET is not set"),
])
def test_a_broken_config_is_named_with_its_key(tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str,
                                               said: str) -> None:
    code, out = doctor(capsys, "--store", f"sqlite:///{tmp_path}/x.db", "--config", toml(tmp_path, text))
    assert code == 1
    assert "PROBLEM  " in out and said in out, out


def test_a_stale_schema_is_reported_and_readyz_says_not_ready(
    store_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    latest = latest_migration()
    omni = Omni(store_url)
    app = create_app(omni)

    def readyz() -> httpx.Response:
        async def get() -> httpx.Response:
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
                return await client.get("/readyz")
        return asyncio.run(get())

    ready = readyz()
    assert ready.status_code == 200 and ready.json()["checks"]["migrations"] == {"ok": True, "version": latest,
                                                                                 "latest": latest}
    with omni.store.transaction() as tx:
        tx.execute("DELETE FROM schema_migrations WHERE version = ?", (latest,))
    stale = readyz()
    assert stale.status_code == 503 and stale.json()["status"] == "not ready"
    assert f"expects {latest}" in stale.json()["checks"]["migrations"]["error"]
    healthz = asyncio.run(_get(app, "/healthz"))
    assert (healthz.status_code, healthz.json()) == (200, {"status": "alive"})
    omni.close()
    code, out = doctor(capsys, "--store", store_url)
    assert code == 1
    previous = max(v for v in _versions() if v < latest)
    assert f"the store's schema is at version {previous} but this omnisdk needs {latest}" in out


async def _get(app: object, path: str) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:  # type: ignore[arg-type]
        return await client.get(path)


def _versions() -> list[int]:
    from omnisdk.store import migrations

    return [v for v, _, _ in migrations()]


def test_missing_and_invalid_credentials(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = f"sqlite:///{tmp_path}/x.db"
    with TwilioImitation() as twilio:
        wrong = toml(tmp_path, sms(twilio.base_url, account_sid=twilio.account_sid, auth_token="not-the-token"))
        code, out = doctor(capsys, "--store", store, "--config", wrong)
        assert code == 1 and "Twilio refused the account SID and auth token (401)" in out
        missing = toml(tmp_path, sms(twilio.base_url, account_sid=twilio.account_sid))
        code, out = doctor(capsys, "--store", store, "--config", missing)
        assert code == 1 and "channels.sms.auth_token: required by provider 'twilio'" in out
        malformed = toml(tmp_path, sms(twilio.base_url, account_sid="AC123", auth_token="t"))
        code, out = doctor(capsys, "--store", store, "--config", malformed)
        assert code == 1 and "invalid value for provider 'twilio'" in out and "account_sid" in out
    assert "not-the-token" not in out


def test_webhook_urls_must_be_https_and_plain_http_base_urls_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text = sms("http://api.twilio.example", account_sid=SID, auth_token="t") + \
        '[webhooks]\npublic_url = "http://shop.example/omnisdk"\n'
    code, out = doctor(capsys, "--store", f"sqlite:///{tmp_path}/x.db", "--config", toml(tmp_path, text))
    assert code == 1
    assert "webhooks.public_url = http://shop.example/omnisdk is not https" in out
    assert "base_url http://api.twilio.example is not https" in out
    assert "no store at" in out  # a store not created yet is a warning, not a problem


def test_event_webhook_endpoints_are_checked_like_provider_webhooks(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    endpoint = '[[event_webhooks]]\nurl = "http://user:pw@warehouse.example/in"\nsecret = "0123456789abcdef0123"\n'
    store = f"sqlite:///{tmp_path}/x.db"
    code, out = doctor(capsys, "--store", store, "--config", toml(tmp_path, endpoint))
    assert code == 1
    assert "event_webhooks.http://warehouse.example/in = http://warehouse.example/in is not https" in out
    assert "pw" not in out  # credentials in the URL are not printed
    short = '[[event_webhooks]]\nurl = "https://warehouse.example/in"\nsecret = "short"\n'
    code, out = doctor(capsys, "--store", store, "--config", toml(tmp_path, short))
    assert code == 1 and "event_webhooks[0].secret" in out and "at least 16 characters" in out
    good = '[[event_webhooks]]\nurl = "https://warehouse.example/in"\nsecret = "0123456789abcdef0123"\n'
    code, out = doctor(capsys, "--store", store, "--config", toml(tmp_path, good))
    assert code == 0, out
    assert "ok       webhooks: event_webhooks.https://warehouse.example/in = https://warehouse.example/in" in out


def test_doctor_findings_are_json_safe_plain_text(tmp_path: Path) -> None:
    from omnisdk.health import diagnose

    findings = diagnose(f"sqlite:///{tmp_path}/x.db", None)
    assert json.dumps([[f.level, f.area, f.message] for f in findings])
    assert {f.area for f in findings} == {"config", "store"}


def test_sendgrid_keys_are_checked_by_their_scopes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from omnisdk.testing.imitations import SendGridImitation

    store = f"sqlite:///{tmp_path}/x.db"
    with SendGridImitation() as sendgrid:
        def config(key: str) -> str:
            return toml(tmp_path, f'[channels.email]\nprovider = "sendgrid"\nbase_url = "{sendgrid.base_url}"\n'
                                  f'from = "Acme <hello@acme.example>"\napi_key = "{key}"\n')

        code, out = doctor(capsys, "--store", store, "--config", config("SG.wrong"))
        assert code == 1 and "SendGrid refused the API key (401)" in out
        code, out = doctor(capsys, "--store", store, "--config", config(sendgrid.api_key))
        assert "email/sendgrid: credentials present and well-formed" in out, out
        assert any(r.path == "/v3/scopes" for r in sendgrid.requests)
