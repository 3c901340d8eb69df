"""The opt-out, opt-in and help keywords US carriers (CTIA) and Twilio honour in an inbound SMS.

A keyword counts only when it is the whole message (case, surrounding spaces and a trailing
punctuation mark ignored): "stop" opts out, "please don't stop" is an ordinary reply.
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = ["HELP", "START", "STOP", "Keyword", "keyword_of"]

STOP: Final = frozenset({"STOP", "STOPALL", "STOP ALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "REVOKE"})
START: Final = frozenset({"START", "YES", "UNSTOP"})
HELP: Final = frozenset({"HELP", "INFO"})

Keyword = Literal["STOP", "START", "HELP"]


def keyword_of(body: str) -> Keyword | None:
    """Which keyword an inbound text is, if it is one."""
    word = " ".join(body.strip().rstrip(".!").split()).upper()
    if word in STOP:
        return "STOP"
    if word in START:
        return "START"
    if word in HELP:
        return "HELP"
    return None
