from __future__ import annotations

from pathlib import Path

import pytest

from omnisdk._config import load_config


def test_toml_file_with_env_secrets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TWILIO_AUTH_TOKEN", "s3cret")
    path = tmp_path / "omnisdk.toml"
    path.write_text(
        '[channels.sms]\nprovider = "twilio"\naccount_sid = "AC123"\nauth_token = "${TWILIO_AUTH_TOKEN}"\n'
        'from = "+15550001111"\n\n[channels.email]\nprovider = "sendgrid"\napi_key = "${SG_KEY:-fallback}"\n'
        'fallback_provider = "smtp"\n\n[channels.email.smtp]\nhost = "smtp.example"\nport = 587\n\n'
        '[policies]\nquiet_hours = { start = "21:00", end = "08:00" }\n'
    )

    config = load_config(path)

    sms = config.channels["sms"]
    assert (sms.provider, sms.settings["auth_token"], sms.settings["from"]) == ("twilio", "s3cret", "+15550001111")
    email = config.channels["email"]
    assert email.settings == {"api_key": "fallback"}
    assert (email.fallback_provider, email.fallback_settings) == ("smtp", {"host": "smtp.example", "port": 587})
    assert config.policies["quiet_hours"] == {"start": "21:00", "end": "08:00"}


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    from omnisdk import ConfigError

    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml")


def test_folders_in_a_config_file_are_relative_to_that_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    app = tmp_path / "app"
    (app / "templates").mkdir(parents=True)
    (app / "omnisdk.toml").write_text(
        '[templates]\nfolder = "templates"\n\n[brand]\npartials_folder = "/abs/partials"\n'
    )
    monkeypatch.chdir(tmp_path)  # not the config's folder

    config = load_config(app / "omnisdk.toml")

    assert config.templates["folder"] == str(app / "templates")
    assert config.brand["partials_folder"] == "/abs/partials"
    assert load_config({"templates": {"folder": "templates"}}).templates["folder"] == "templates"
