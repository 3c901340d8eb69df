"""`omni.preferences` and `omni.set_preferences`: the customer's topic and channel choices, with history.

Changes are appended to the preference ledger (`store/_preferences.py`) with who made them
(`source`) and what they rest on (`evidence`: the preference centre's request, an API caller's
note), like consent; the policies read the ledger at claim time and again right before the call.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ._clock import Clock
from ._errors import ValidationError
from ._identity import IdentityResolver, Who, load_customer
from ._topics import ALL_TOPICS, Preferences, Topics
from ._touchpoints import MESSAGE_CHANNELS
from ._validation import Validator
from .store import SQLStore, Transaction
from .store._preferences import insert_preferences

__all__ = ["PreferenceLedger"]

_MAX_EVIDENCE = 1024


class PreferenceLedger:
    """Reads and writes the customers' topic choices, checked against the configured topics."""

    def __init__(self, store: SQLStore, clock: Clock, identity: IdentityResolver, topics: Topics,
                 validator: Validator) -> None:
        self.store = store
        self.clock = clock
        self.identity = identity
        self.topics = topics
        self.validate = validator

    def preferences(self, who: Who) -> Preferences:
        """Per configured topic and its channels, whether the customer gets it; and the ledger."""
        explicit, pairs = self.identity.who(who)
        with self.store.transaction() as tx:
            cid = self.identity.resolve_checked(tx, explicit, pairs, self.clock.timestamp())
            return self.read(tx, cid)

    def read(self, tx: Transaction, customer_id: str) -> Preferences:
        customer = load_customer(tx, customer_id)
        return Preferences(customer_id=customer.id, choices=self.topics.choices(customer.preferences),
                           history=tuple(customer.preferences))

    def set_preferences(self, who: Who, choices: Mapping[str, Mapping[str, bool]], *, source: str = "api",
                        evidence: str | None = None) -> Preferences:
        """Record `{topic: {channel: subscribed}}` (topic `*` covers every marketing topic, channel
        `all` every channel); returns the preferences after the change."""
        entries = self.entries(choices)
        self.validate.source(source)
        if evidence is not None and (not isinstance(evidence, str) or len(evidence) > _MAX_EVIDENCE):
            raise ValidationError(f"expected text of at most {_MAX_EVIDENCE} characters", field="evidence")
        explicit, pairs = self.identity.who(who)
        now = self.clock.timestamp()
        with self.store.transaction() as tx:
            cid = self.identity.resolve_checked(tx, explicit, pairs, now)
            self.write(tx, cid, entries, source=source, evidence=evidence, now=now)
            return self.read(tx, cid)

    def store_choices(self, customer_id: str, entries: list[tuple[str, str, bool]], *, source: str,
                      evidence: str | None) -> None:
        """Append checked entries for a known customer (the preference centre, one-click unsubscribe)."""
        with self.store.transaction() as tx:
            self.write(tx, customer_id, entries, source=source, evidence=evidence, now=self.clock.timestamp())

    def write(self, tx: Transaction, customer_id: str, entries: list[tuple[str, str, bool]], *, source: str,
              evidence: str | None, now: float) -> None:
        insert_preferences(tx, customer_id, entries, source, now, evidence)

    def entries(self, choices: Any) -> list[tuple[str, str, bool]]:
        """`choices` checked: known topics (or `*`), channels the topic goes out on (or `all`), booleans."""
        if not isinstance(choices, Mapping) or not choices:
            raise ValidationError("expected {topic: {channel: True/False}}", field="choices")
        if not self.topics:
            raise ValidationError("no topics are configured ([topics.<name>] in the config)", field="choices")
        entries = []
        for topic, channels in choices.items():
            found = self.topics.get(topic) if isinstance(topic, str) else None
            if topic != ALL_TOPICS and found is None:
                raise ValidationError(f"unknown topic (known: {', '.join(self.topics.by_name)}, or '*')",
                                      field=f"choices.{topic}")
            if found is not None and found.transactional:
                raise ValidationError("a transactional topic cannot be opted out of", field=f"choices.{topic}")
            if not isinstance(channels, Mapping) or not channels:
                raise ValidationError("expected {channel: True/False}", field=f"choices.{topic}")
            allowed = found.channels if found is not None else MESSAGE_CHANNELS
            for channel, subscribed in channels.items():
                where = f"choices.{topic}.{channel}"
                if channel != "all" and channel not in allowed:
                    raise ValidationError(f"expected one of {', '.join(allowed)} or 'all'", field=where)
                if not isinstance(subscribed, bool):
                    raise ValidationError("expected True or False", field=where, value=subscribed)
                entries.append((str(topic), str(channel), subscribed))
        return entries
