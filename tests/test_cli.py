"""The `omnisdk` command, run in-process as a user would call it."""

from __future__ import annotations

import pytest
import structlog

from omnisdk.cli import main


@pytest.fixture(autouse=True)
def _restore_logging() -> object:
    yield None
    structlog.reset_defaults()  # main() configures structlog for the process, as a CLI should


def test_plugins_lists_plugins_providers_and_channels(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["plugins"])

    out = capsys.readouterr().out
    assert code == 0
    assert "omnisdk.default_plugins.memory (builtin)" in out
    for channel, provider in [("sms", "twilio"), ("email", "sendgrid"), ("push", "fcm"), ("direct_mail", "lob"),
                              ("pos", "square"), ("social", "whatsapp")]:
        assert any(line.split()[:2] == [channel, provider] for line in out.splitlines()), (channel, provider)
    assert "Channels: direct_mail, email, pos, push, sms, social" in out


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "COMMAND" in capsys.readouterr().out


def test_an_omni_error_is_one_line_and_exit_1(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--store", "mysql://nope", "plugins"]) in (0, 1)  # plugins needs no store
    assert main(["--store", "mysql://nope", "journeys", "runs"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("omnisdk: error: ") and "mysql://nope" in err
