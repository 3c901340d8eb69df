"""Tracked links: UTM parameters for analytics, and a signed token whose redirect records the click.

A token carries what attribution needs (customer, channel, journey, step, delivery, template)
and the destination, signed with HMAC-SHA256: the redirect needs no lookup, cannot be turned
into an open redirect, and rendering writes nothing to the store.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import attrs

from .._errors import ConfigError, TemplateError, WebhookError
from .._touchpoints import Events
from ..store import SQLStore
from ..store._links import signing_key

__all__ = ["Click", "LinkSettings", "Links", "PreferenceLink", "Unsubscribe", "stored_signing_key"]

DEFAULT_UTM: Final = {
    "utm_source": "omnisdk",
    "utm_medium": "{channel}",
    "utm_campaign": "{campaign}",
    "utm_content": "{template}",
}
#: Where previews point when no public URL is configured (the ASGI app on a local dev server).
DEFAULT_BASE_URL: Final = "http://localhost:8000/omnisdk"
_SIGNATURE_BYTES = 16
_CLICK, _UNSUBSCRIBE, _PREFERENCES, _CONFIRM = "c", "u", "p", "o"
_KINDS: Final = {_CLICK: "click", _UNSUBSCRIBE: "unsubscribe", _PREFERENCES: "preferences", _CONFIRM: "confirmation"}
#: Token payload keys, short to keep links short (SMS segments cost money).
_FIELDS: Final = {"customer_id": "i", "channel": "h", "template": "t", "delivery_id": "d", "journey": "j",
                  "step": "s", "run_id": "r", "topic": "o"}
#: How long a preference-centre link works (`[preferences] link_expiry`).
PREFERENCE_LINK_TTL: Final = 60 * 86400.0


@attrs.frozen(kw_only=True)
class LinkSettings:
    """`[templates.links]`: where the ASGI app is mounted, the UTM parameters, and what to track."""

    #: Public base URL of the mounted ASGI app: clicks go to `{base_url}/c/{token}`,
    #: one-click unsubscribes to `{base_url}/u/{token}`.
    base_url: str = DEFAULT_BASE_URL
    utm: Mapping[str, str] = attrs.field(factory=lambda: dict(DEFAULT_UTM))
    #: Rewrite every http(s) `href` of email HTML, and a push's `url`, into tracked links.
    track: bool = True
    #: Seconds a signed preference-centre link works after the message was rendered.
    preference_ttl: float = PREFERENCE_LINK_TTL

    @classmethod
    def from_config(cls, templates: Mapping[str, Any], webhooks: Mapping[str, Any],
                    preference_ttl: float = PREFERENCE_LINK_TTL) -> LinkSettings:
        links = templates.get("links", {})
        if not isinstance(links, Mapping):
            raise ConfigError("must be a table", field="templates.links")
        base = links.get("base_url") or webhooks.get("public_url") or DEFAULT_BASE_URL
        if not isinstance(base, str) or not base.startswith(("http://", "https://")):
            raise ConfigError(f"expected an http(s) URL, got {base!r}", field="templates.links.base_url")
        utm = links.get("utm", DEFAULT_UTM)
        if not isinstance(utm, Mapping) or not all(isinstance(v, str) for v in utm.values()):
            raise ConfigError("expected a table of UTM parameters", field="templates.links.utm")
        placeholders = dict.fromkeys(("channel", "campaign", *_FIELDS), "")
        for key, pattern in utm.items():
            try:
                pattern.format_map(placeholders)
            except (KeyError, ValueError, IndexError):
                known = ", ".join("{" + name + "}" for name in placeholders)
                raise ConfigError(f"unknown placeholder in {pattern!r}; known: {known}",
                                  field=f"templates.links.utm.{key}") from None
        return cls(base_url=base.rstrip("/"), utm=dict(utm), track=bool(links.get("track", True)),
                   preference_ttl=preference_ttl)


@attrs.frozen(kw_only=True)
class Click:
    """A verified click: where to redirect, and the "Link Clicked" touchpoint to record."""

    url: str
    customer_id: str
    channel: str
    properties: Mapping[str, Any]
    event: str = Events.LINK_CLICKED


@attrs.frozen(kw_only=True)
class Unsubscribe:
    """A verified one-click unsubscribe: revoke `purpose` consent for `channel`."""

    customer_id: str
    channel: str
    purpose: str
    properties: Mapping[str, Any]
    #: The topic of the message it came in: one-click then leaves that topic on that channel.
    topic: str | None = None


@attrs.frozen(kw_only=True)
class PreferenceLink:
    """A verified preference-centre (or double opt-in confirmation) link: whose, from which channel, until when."""

    customer_id: str
    channel: str
    expires_at: float
    topic: str | None = None
    #: The double opt-in request a confirmation link confirms.
    request_id: str | None = None


def stored_signing_key(store: SQLStore, name: str = "links") -> bytes:
    """The store's own signing key, generated once: every worker on the store signs alike."""
    return signing_key(store, name)


class Links:
    """Builds tracked and unsubscribe links, and verifies their tokens when they come back."""

    def __init__(self, settings: LinkSettings, key: bytes | Callable[[], bytes],
                 clock: Callable[[], float] | None = None) -> None:
        self.settings = settings
        #: The time preference links are signed at (the client's clock: virtual in tests).
        self.clock: Callable[[], float] = clock or time.time
        self._key_source = key
        self._key: bytes | None = key if isinstance(key, bytes) else None

    @property
    def key(self) -> bytes:
        if self._key is None:
            assert callable(self._key_source)
            self._key = self._key_source()
        return self._key

    # -- building
    def with_utm(self, url: str, attribution: Mapping[str, str | None], overrides: Mapping[str, Any]) -> str:
        """`url` with the configured UTM parameters added (parameters already in the URL are kept)."""
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        present = {k for k, _ in query}
        values = {k: v or "" for k, v in attribution.items()}
        values["campaign"] = values.get("journey") or values.get("template") or ""
        wanted = {key: pattern.format_map(values) for key, pattern in self.settings.utm.items()}
        wanted.update({key: str(value) for key, value in overrides.items() if value is not None})
        added = [(key, value) for key, value in wanted.items() if value and key not in present]
        if not added:
            return url
        return urlunsplit(parts._replace(query=urlencode([*query, *added])))

    def tracked(self, url: str, attribution: Mapping[str, str | None], **utm: Any) -> str:
        """A link that redirects to `url` (plus UTM) and records the click for attribution."""
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise TemplateError(f"link(): expected an http(s) URL, got {url!r}")
        if not self.settings.track:
            return self.with_utm(url, attribution, utm)
        # UTM parameters are added when the click comes back, from the signed attribution: shorter links.
        extra: dict[str, Any] = {"u": url}
        if utm:
            extra["m"] = {k: str(v) for k, v in utm.items() if v is not None}
        return f"{self.settings.base_url}/c/{self._sign(_CLICK, attribution, extra)}"

    def unsubscribe_url(self, attribution: Mapping[str, str | None], purpose: str = "marketing") -> str:
        """The one-click unsubscribe link (RFC 8058) for this customer and channel."""
        return f"{self.settings.base_url}/u/{self._sign(_UNSUBSCRIBE, attribution, {'p': purpose})}"

    def preferences_url(self, attribution: Mapping[str, str | None], *, expires_at: float | None = None) -> str:
        """The customer's preference centre (`{base_url}/preferences/{token}`), signed, expiring."""
        until = self.clock() + self.settings.preference_ttl if expires_at is None else expires_at
        wanted = {k: attribution.get(k) for k in ("customer_id", "channel", "topic")}
        return f"{self.settings.base_url}/preferences/{self._sign(_PREFERENCES, wanted, {'x': int(until)})}"

    def confirmation_url(self, customer_id: str, channel: str, request_id: str, *, expires_at: float) -> str:
        """A double opt-in confirmation link (`{base_url}/confirm/{token}`), signed, expiring with its request."""
        token = self._sign(_CONFIRM, {"customer_id": customer_id, "channel": channel},
                           {"q": request_id, "x": int(expires_at)})
        return f"{self.settings.base_url}/confirm/{token}"

    def is_tracked(self, url: str) -> bool:
        return url.startswith(self.settings.base_url + "/")

    # -- verifying
    def resolve_click(self, token: str) -> Click:
        """Verify a click token; raises `WebhookError` (400) when it is malformed or not ours."""
        payload = self._verify(_CLICK, token)
        url, overrides = payload.get("u"), payload.get("m", {})
        if not isinstance(url, str) or not url.startswith(("http://", "https://")) or not isinstance(overrides, dict):
            raise WebhookError("click token has no destination URL", status=400)
        attribution = {name: payload.get(short) for name, short in _FIELDS.items()}
        destination = self.with_utm(url, attribution, overrides)
        return Click(url=destination, customer_id=payload["i"], channel=payload["h"],
                     properties=_properties(payload, destination))

    def resolve_unsubscribe(self, token: str) -> Unsubscribe:
        """Verify an unsubscribe token; raises `WebhookError` (400) when it is malformed or not ours."""
        payload = self._verify(_UNSUBSCRIBE, token)
        topic = payload.get("o")
        return Unsubscribe(customer_id=payload["i"], channel=payload["h"], purpose=str(payload.get("p", "marketing")),
                           properties=_properties(payload, None), topic=topic if isinstance(topic, str) else None)

    def resolve_preferences(self, token: str, *, now: float, confirmation: bool = False) -> PreferenceLink:
        """Verify a preference (or confirmation) token; `WebhookError` 403 when forged, 410 when expired."""
        try:
            payload = self._verify(_CONFIRM if confirmation else _PREFERENCES, token)
        except WebhookError as exc:
            raise WebhookError(str(exc), status=403) from None
        until, topic, request = payload.get("x"), payload.get("o"), payload.get("q")
        if not isinstance(until, int) or isinstance(until, bool):
            raise WebhookError("link token has no expiry", status=403)
        if until <= now:
            raise WebhookError("this link has expired", status=410)
        return PreferenceLink(customer_id=str(payload["i"]), channel=str(payload["h"]), expires_at=float(until),
                              topic=topic if isinstance(topic, str) else None,
                              request_id=request if isinstance(request, str) else None)

    # -- tokens
    def _sign(self, kind: str, attribution: Mapping[str, str | None], extra: Mapping[str, Any]) -> str:
        payload = {"k": kind, **{short: attribution[name] for name, short in _FIELDS.items() if attribution.get(name)},
                   **extra}
        body = _b64(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())
        return f"{body}.{self._signature(body)}"

    def _signature(self, body: str) -> str:
        return _b64(hmac.new(self.key, body.encode(), hashlib.sha256).digest()[:_SIGNATURE_BYTES])

    def _verify(self, kind: str, token: str) -> dict[str, Any]:
        if not isinstance(token, str) or not token.isascii() or len(token) > 4096:
            raise WebhookError("malformed link token", status=400)
        body, _, signature = token.partition(".")
        if not body or not signature:
            raise WebhookError("malformed link token", status=400)
        if not hmac.compare_digest(signature, self._signature(body)):
            raise WebhookError("link token signature does not match", status=400)
        try:
            payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        except (binascii.Error, ValueError):
            raise WebhookError("malformed link token", status=400) from None
        if not isinstance(payload, dict) or payload.get("k") != kind or not payload.get("i") or not payload.get("h"):
            raise WebhookError(f"link token is not a {_KINDS[kind]} token", status=400)
        return payload


def _properties(payload: Mapping[str, Any], url: str | None) -> dict[str, Any]:
    props = {name: payload[short] for name, short in _FIELDS.items() if short in payload and name != "customer_id"}
    props.pop("channel", None)
    if url is not None:
        props["url"] = url
    return props


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
