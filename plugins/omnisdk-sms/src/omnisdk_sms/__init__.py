"""omnisdk SMS plugin: Twilio and Vonage providers, GSM-7/UCS-2 segment counting, STOP/START/HELP."""

from __future__ import annotations

from typing import Any

import omnisdk

from .keywords import keyword_of
from .segments import SegmentCount, count_segments
from .twilio import TwilioSMS
from .vonage import VonageSMS

__all__ = ["SegmentCount", "TwilioSMS", "VonageSMS", "count_segments", "keyword_of", "register_providers"]


@omnisdk.hookimpl
def register_providers(register: Any) -> None:
    register(TwilioSMS)
    register(VonageSMS)
