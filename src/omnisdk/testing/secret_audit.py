"""A pytest plugin that fails the session when a configured secret shows up in anything the suite produced.

Enable it with `-p omnisdk.testing.secret_audit`, or `pytest_plugins = ["omnisdk.testing.secret_audit"]`
in the root `conftest.py` (omnisdk's own suite does, for `pytest tests plugins/*`). Through the
session it collects:

* every stdlib logging record, DEBUG included (a handler on the root logger, set to DEBUG);
* what each test printed and structlog rendered (its captured stdout and stderr) and pytest's
  captured log, and the text of every failure;
* the repr of every config, channel, provider and omnisdk error made, and the text of each error
  (`omnisdk._secrets.witness`), taken when the test that made it ends (a config is complete, its
  providers' secrets declared, only once its client is built).

At the end it looks in all of it for every secret value configured during the session: those a
provider's `Config` declared with `omnisdk.secret()` and the core's own (`webhooks.signing_key`).
Values shorter than `omnisdk._secrets.MIN_LENGTH` are not looked for: too short to tell a leak
from an ordinary word.
"""

from __future__ import annotations

import logging
import weakref
from typing import Any

import pytest

from .. import _secrets

__all__ = ["SecretAudit"]


class SecretAudit(logging.Handler):
    """The texts of one session, and where each came from."""

    def __init__(self) -> None:
        super().__init__(logging.NOTSET)
        self.texts: dict[str, str] = {}  # text -> where it was first seen
        self.where = "collection"
        self._formatter = logging.Formatter()
        self._root_level = logging.WARNING
        self._made: list[tuple[str, str, weakref.ref[Any] | object]] = []

    def add(self, where: str, text: str) -> None:
        if text and text not in self.texts:
            self.texts[text] = where

    # -- logging.Handler
    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            if record.exc_info:
                text += "\n" + self._formatter.formatException(record.exc_info)
        except Exception:  # a record whose arguments do not format: what it would show is its parts
            text = f"{record.msg!r} {record.args!r}"
        self.add(f"{self.where}: a log record of {record.name!r}", text)

    # -- omnisdk._secrets.witness
    def witness(self, kind: str, obj: object) -> None:
        try:
            held: weakref.ref[Any] | object = weakref.ref(obj)
        except TypeError:  # no weak references to it: kept until its test ends
            held = obj
        self._made.append((self.where, kind, held))

    def show_made(self) -> None:
        """Take the reprs of what the test made and is still alive, as anything printing them would."""
        made, self._made = self._made, []
        for where, kind, held in made:
            obj = held() if isinstance(held, weakref.ref) else held
            if obj is not None:
                text = repr(obj) + ("\n" + str(obj) if isinstance(obj, BaseException) else "")
                self.add(f"{where}: the repr of a {kind}", text)

    def leaks(self) -> list[tuple[str, str]]:
        """(secret, where) for every configured secret found in a text."""
        secrets = sorted(s for s in _secrets.known() if len(s) >= _secrets.MIN_LENGTH)
        everything = "\0".join(self.texts)
        found = []
        for secret in secrets:
            if secret in everything:
                where = next(w for text, w in self.texts.items() if secret in text)
                found.append((secret, where))
        return found


_audit = SecretAudit()


def _shown(secret: str) -> str:
    return f"{secret[:3]}… ({len(secret)} characters)"


def pytest_configure(config: pytest.Config) -> None:
    root = logging.getLogger()
    _audit._root_level = root.level
    root.addHandler(_audit)
    root.setLevel(logging.DEBUG)
    _secrets.witnesses.append(_audit.witness)


def pytest_unconfigure(config: pytest.Config) -> None:
    root = logging.getLogger()
    root.removeHandler(_audit)
    root.setLevel(_audit._root_level)
    if _audit.witness in _secrets.witnesses:
        _secrets.witnesses.remove(_audit.witness)


def pytest_runtest_logstart(nodeid: str, location: Any) -> None:
    _audit.where = nodeid


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "teardown":
        _audit.show_made()
    for name, content in report.sections:
        _audit.add(f"{report.nodeid}: {name}", content)
    if report.failed:
        _audit.add(f"{report.nodeid}: the failure report", report.longreprtext)


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    _audit.show_made()
    leaks = _audit.leaks()
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.ensure_newline()
        reporter.write_sep("-", f"secret audit: {len(_audit.texts)} texts, {len(leaks)} configured secrets shown")
        for secret, where in leaks:
            reporter.write_line(f"  {_shown(secret)} shown in {where}")
    if leaks:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
