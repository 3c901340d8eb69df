"""The opt-out, opt-in and help keywords US carriers (CTIA) and Twilio honour in an inbound SMS.

A keyword counts only when it is the whole message (case, surrounding spaces and a trailing
punctuation mark ignored): "stop" opts out, "please don't stop" is an ordinary reply.

STOP revokes; START restores what STOP revoked; YES is only a keyword, and grants marketing
only when it answers a double opt-in prompt the customer was sent (the core checks that).
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = ["HELP", "START", "STOP", "YES", "Keyword", "keyword_of"]

#: Twilio's default opt-out keywords, and CTIA's ("OPT OUT", "REVOKE").
STOP: Final = frozenset({"STOP", "STOPALL", "STOP ALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "OPTOUT", "OPT OUT",
                         "OPT-OUT", "REVOKE"})
START: Final = frozenset({"START", "UNSTOP"})
YES: Final = frozenset({"YES", "Y"})
HELP: Final = frozenset({"HELP", "INFO"})

Keyword = Literal["STOP", "START", "YES", "HELP"]


def keyword_of(body: str) -> Keyword | None:
    """Which keyword an inbound text is, if it is one."""
    word = " ".join(body.strip().rstrip(".!").split()).upper()
    if word in STOP:
        return "STOP"
    if word in START:
        return "START"
    if word in YES:
        return "YES"
    if word in HELP:
        return "HELP"
    return None
