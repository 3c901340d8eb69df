"""Topics a customer can choose per channel (`[topics.<name>]`), and what they chose (the preference ledger).

A topic is what a message is about ("newsletter", "offers", "order-updates"). Marketing topics are
opt-out (sent unless the customer said no) or opt-in (sent only after a yes); a transactional topic
ignores the choices, because an order update is not something a customer subscribes to. A topic's
`frequency` caps its sends to one per day, week or month per customer. The ledger is append-only:
the latest entry for a topic (or `*`, every marketing topic) and channel (or `all`) wins.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import attrs

from ._errors import ConfigError, ValidationError
from ._touchpoints import MESSAGE_CHANNELS

__all__ = ["ALL_TOPICS", "Preference", "Preferences", "Topic", "Topics"]

#: The ledger's wildcard topic: an entry for it covers every marketing topic ("unsubscribe from all").
ALL_TOPICS: Final = "*"
_FREQUENCIES: Final = {"daily": 86400.0, "weekly": 7 * 86400.0, "monthly": 30 * 86400.0}
_KEYS: Final = ("label", "default", "channels", "frequency", "transactional", "description")


@attrs.frozen(kw_only=True)
class Topic:
    """One `[topics.<name>]` table."""

    name: str
    #: Label per locale ("en", "fr"); `label_for` falls back to English, then the name.
    labels: Mapping[str, str] = attrs.field(factory=dict)
    #: "opt-out": sent unless the customer opted out; "opt-in": only after they opted in.
    default: str = "opt-out"
    channels: tuple[str, ...] = MESSAGE_CHANNELS
    #: At most one send of this topic per customer within this many seconds (None: no cap).
    frequency: float | None = None
    frequency_text: str | None = None
    transactional: bool = False

    def label_for(self, locale: str | None) -> str:
        for key in (locale, (locale or "").split("-")[0], "en"):
            if key and key in self.labels:
                return self.labels[key]
        return self.name

    @property
    def purpose(self) -> str:
        return "transactional" if self.transactional else "marketing"


@attrs.frozen(kw_only=True)
class Preference:
    """One entry of the preference ledger: `subscribed` to `topic` on `channel`, with who said so and why."""

    topic: str
    channel: str
    subscribed: bool
    source: str
    recorded_at: datetime
    evidence: str | None = None


@attrs.frozen(kw_only=True)
class Preferences:
    """What `omni.preferences(who)` returns: per topic and channel, whether it is sent, and the ledger."""

    customer_id: str
    #: {topic: {channel: subscribed}} for every configured topic and its channels.
    choices: Mapping[str, Mapping[str, bool]]
    history: Sequence[Preference] = ()

    def subscribed(self, topic: str, channel: str) -> bool:
        return bool(self.choices.get(topic, {}).get(channel, False))


@attrs.frozen
class Topics:
    """The configured topics by name (empty: topics are off, and sends need none)."""

    by_name: Mapping[str, Topic] = attrs.field(factory=dict)

    @classmethod
    def from_config(cls, section: Any) -> Topics:
        if section is None:
            return cls()
        if not isinstance(section, Mapping):
            raise ConfigError("must be a table of topics", field="topics")
        topics = {}
        for name, table in section.items():
            where = f"topics.{name}"
            if not isinstance(name, str) or not name or name == ALL_TOPICS or len(name) > 64:
                raise ConfigError("expected a topic name of 1-64 characters", field=where)
            if not isinstance(table, Mapping):
                raise ConfigError("must be a table", field=where)
            topics[name] = _topic(name, table, where)
        return cls(topics)

    def __bool__(self) -> bool:
        return bool(self.by_name)

    def get(self, name: str) -> Topic | None:
        return self.by_name.get(name)

    def check(self, topic: Any, purpose: str, field: str = "topic") -> Topic | None:
        """The topic a send names, checked at the door: it must be configured, and a send's purpose
        must match the topic's (a marketing topic never goes out as transactional). When topics are
        configured, a marketing send must name one (so the customer's choices can apply to it)."""
        if topic is None:
            if self.by_name and purpose == "marketing":
                raise ValidationError(f"a marketing send must name its topic (one of {', '.join(self.by_name)})",
                                      field=field)
            return None
        if not isinstance(topic, str) or topic not in self.by_name:
            known = ", ".join(self.by_name) or "none configured"
            raise ValidationError(f"unknown topic (known: {known})", field=field, value=topic)
        found = self.by_name[topic]
        if found.purpose != purpose:
            raise ValidationError(f"topic {topic!r} is {found.purpose}, but the send's purpose is {purpose}",
                                  field=field, value=topic)
        return found

    def choices(self, ledger: Sequence[Preference]) -> dict[str, dict[str, bool]]:
        """{topic: {channel: sent?}} from a customer's ledger (oldest entry first)."""
        return {name: {channel: self.subscribed(ledger, name, channel) for channel in topic.channels}
                for name, topic in self.by_name.items()}

    def subscribed(self, ledger: Sequence[Preference], topic: str, channel: str) -> bool:
        """Whether the customer gets `topic` on `channel`: transactional always; else the latest
        matching ledger entry (topic or `*`, channel or `all`), else the topic's default."""
        found = self.by_name.get(topic)
        if found is None:
            return True  # not a configured topic: the choices do not apply
        if found.transactional:
            return True
        latest: Preference | None = None
        for entry in ledger:
            if entry.topic in (topic, ALL_TOPICS) and entry.channel in (channel, "all") and (
                    latest is None or entry.recorded_at >= latest.recorded_at):
                latest = entry
        if latest is not None:
            return latest.subscribed
        return found.default == "opt-out"

    @property
    def windows(self) -> dict[str, float]:
        """Each capped topic's frequency window, seconds."""
        return {name: t.frequency for name, t in self.by_name.items() if t.frequency}


def _topic(name: str, table: Mapping[str, Any], where: str) -> Topic:
    for key in table:
        if key not in _KEYS:
            raise ConfigError(f"unknown key; expected one of {', '.join(_KEYS)}", field=f"{where}.{key}")
    label = table.get("label", {})
    labels = {"en": label} if isinstance(label, str) else label
    if not isinstance(labels, Mapping) or not all(isinstance(k, str) and isinstance(v, str) and v
                                                  for k, v in labels.items()):
        raise ConfigError("expected a label, or a table of labels per locale", field=f"{where}.label")
    default = table.get("default", "opt-out")
    if default not in ("opt-in", "opt-out"):
        raise ConfigError("expected 'opt-in' or 'opt-out'", field=f"{where}.default")
    channels = table.get("channels", list(MESSAGE_CHANNELS))
    if not isinstance(channels, list | tuple) or not channels or any(c not in MESSAGE_CHANNELS for c in channels):
        raise ConfigError(f"expected a list of channels from {', '.join(MESSAGE_CHANNELS)}", field=f"{where}.channels")
    transactional = table.get("transactional", False)
    if not isinstance(transactional, bool):
        raise ConfigError("expected true or false", field=f"{where}.transactional")
    frequency = table.get("frequency")
    window: float | None = None
    if frequency is not None:
        if frequency not in _FREQUENCIES:
            raise ConfigError(f"expected one of {', '.join(_FREQUENCIES)}", field=f"{where}.frequency")
        window = _FREQUENCIES[frequency]
    return Topic(name=name, labels=dict(labels), default=default, channels=tuple(dict.fromkeys(channels)),
                 frequency=window, frequency_text=frequency, transactional=transactional)
