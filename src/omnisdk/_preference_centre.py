"""The hosted preference centre and double opt-in confirmation pages, served by the ASGI app.

    GET  /preferences/{token}   the customer's topics per channel, in their locale
    POST /preferences/{token}   save the form (or "unsubscribe from all"), then 303 back to the page
    GET  /confirm/{token}       a double opt-in confirmation form (mail scanners fetch links; only a POST confirms)
    POST /confirm/{token}       grant the consent, with the time, IP and user agent as evidence

The token is an HMAC-signed, expiring, per-customer link (`Links.preferences_url`): it is the
only credential and the CSRF defence (a form can only be posted to a URL that holds it). A
tampered or expired token is refused 403, with a page that says which and shows no data.
Pages are plain server-rendered HTML forms: they work without JavaScript.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from html import escape
from typing import Final
from urllib.parse import parse_qsl, quote

import attrs

from ._clock import Clock
from ._customers import Customer
from ._errors import NotFoundError, WebhookError
from ._logging import get_logger
from ._preferences import PreferenceLedger
from ._topics import ALL_TOPICS, Topics
from .messages._links import Links
from .providers import WebhookResponse

__all__ = ["PreferenceCentre"]

log = get_logger("omnisdk.preferences")

#: The page's own words per language; topic labels come from `[topics.<name>] label`.
TEXTS: Final[Mapping[str, Mapping[str, str]]] = {
    "en": {
        "title": "Your communication preferences", "intro": "Choose what we send you, and where.",
        "save": "Save my preferences", "saved": "Your preferences are saved.",
        "all": "Unsubscribe from all marketing", "all_help": "Order and account messages still reach you.",
        "all_done": "You are unsubscribed from all marketing messages.",
        "refused": "This link cannot be used", "tampered": "This link is not valid. Please use the link from "
        "one of our recent messages.", "expired": "This link has expired. The link in our next message will work.",
        "confirm_title": "Confirm your subscription", "confirm_intro": "Please confirm that you want to receive "
        "our messages.", "confirm": "Yes, subscribe me", "confirmed": "Thank you: your subscription is confirmed.",
        "email": "Email", "sms": "Text message (SMS)", "push": "Push notification", "social": "Messenger / WhatsApp",
        "direct_mail": "Post", "pos": "In store",
    },
    "fr": {
        "title": "Vos préférences de communication", "intro": "Choisissez ce que nous vous envoyons, et où.",
        "save": "Enregistrer mes préférences", "saved": "Vos préférences sont enregistrées.",
        "all": "Me désabonner de tout le marketing", "all_help": "Les messages sur vos commandes et votre compte "
        "vous parviennent toujours.", "all_done": "Vous êtes désabonné de tous les messages marketing.",
        "refused": "Ce lien ne peut pas être utilisé", "tampered": "Ce lien n'est pas valide. Utilisez le lien "
        "d'un de nos messages récents.", "expired": "Ce lien a expiré. Le lien de notre prochain message "
        "fonctionnera.",
        "confirm_title": "Confirmez votre abonnement", "confirm_intro": "Merci de confirmer que vous souhaitez "
        "recevoir nos messages.", "confirm": "Oui, je m'abonne", "confirmed": "Merci : votre abonnement est "
        "confirmé.",
        "email": "E-mail", "sms": "SMS", "push": "Notification push", "social": "Messenger / WhatsApp",
        "direct_mail": "Courrier", "pos": "En magasin",
    },
    "de": {
        "title": "Ihre Kommunikationseinstellungen", "intro": "Wählen Sie, was wir Ihnen senden und wohin.",
        "save": "Einstellungen speichern", "saved": "Ihre Einstellungen sind gespeichert.",
        "all": "Von allen Werbenachrichten abmelden", "all_help": "Nachrichten zu Bestellungen und Ihrem Konto "
        "erhalten Sie weiterhin.", "all_done": "Sie sind von allen Werbenachrichten abgemeldet.",
        "refused": "Dieser Link kann nicht verwendet werden", "tampered": "Dieser Link ist ungültig. Bitte "
        "verwenden Sie den Link aus einer unserer letzten Nachrichten.", "expired": "Dieser Link ist abgelaufen. "
        "Der Link in unserer nächsten Nachricht funktioniert.",
        "confirm_title": "Bestätigen Sie Ihr Abonnement", "confirm_intro": "Bitte bestätigen Sie, dass Sie unsere "
        "Nachrichten erhalten möchten.", "confirm": "Ja, abonnieren", "confirmed": "Danke: Ihr Abonnement ist "
        "bestätigt.",
        "email": "E-Mail", "sms": "SMS", "push": "Push-Benachrichtigung", "social": "Messenger / WhatsApp",
        "direct_mail": "Post", "pos": "Im Geschäft",
    },
}

#: Body text #1a1a1a and button #1a4fd6 on white: contrast 17:1 and 6.6:1 (WCAG 2.1 AA asks 4.5:1).
_STYLE: Final = (
    "body{font:16px/1.5 system-ui,sans-serif;color:#1a1a1a;background:#fff;margin:0}"
    "main{max-width:36rem;margin:2rem auto;padding:0 1rem}"
    "fieldset{border:1px solid #6b6b6b;border-radius:4px;margin:0 0 1rem;padding:.5rem 1rem}"
    "legend{font-weight:600;padding:0 .25rem}"
    "label{display:block;padding:.25rem 0}"
    "button{font:inherit;color:#fff;background:#1a4fd6;border:0;border-radius:4px;padding:.6rem 1rem;cursor:pointer}"
    "button.secondary{color:#1a1a1a;background:#fff;border:2px solid #1a1a1a}"
    "a:focus-visible,input:focus-visible,button:focus-visible{outline:3px solid #b35900;outline-offset:2px}"
    "p.status{border-left:4px solid #1d6b2f;padding:.5rem 1rem;background:#eef7f0}"
    "p.help{color:#4a4a4a}"
)
#: No script, nothing fetched from elsewhere, forms only to us, no framing: the page needs none of it.
_HEADERS: Final = {"content-type": "text/html; charset=utf-8", "cache-control": "no-store",
                   "referrer-policy": "no-referrer", "x-frame-options": "DENY", "x-content-type-options": "nosniff",
                   "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
                                              "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"}


def _language(locale: str | None) -> str:
    lang = (locale or "en").replace("_", "-").split("-")[0].lower()
    return lang if lang in TEXTS else "en"


def _page(lang: str, title: str, body: str, status: int = 200) -> WebhookResponse:
    html = (f'<!doctype html><html lang="{lang}"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
            f"<body><main><h1>{escape(title)}</h1>{body}</main></body></html>")
    return WebhookResponse(status=status, headers=dict(_HEADERS), body=html.encode())


@attrs.frozen(kw_only=True)
class PreferenceCentre:
    """What the pages read and write: link verification, the preference ledger, the profile, opt-in confirmation."""

    links: Links
    ledger: PreferenceLedger
    topics: Topics
    clock: Clock
    customer: Callable[[str], Customer]
    #: Confirms a double opt-in from its token, given the evidence; returns the customer id.
    confirm: Callable[..., str]

    def handle(self, method: str, parts: Sequence[str], *, path: str, query: str, headers: Mapping[str, str],
               body: bytes, client: str | None) -> WebhookResponse | None:
        """The answer for `/preferences/{token}` or `/confirm/{token}`; None for any other path."""
        if len(parts) != 2 or parts[0] not in ("preferences", "confirm") or method not in ("GET", "HEAD", "POST"):
            return None
        token, confirmation = parts[1], parts[0] == "confirm"
        lang = _language(_accepted(headers))
        try:
            link = self.links.resolve_preferences(token, now=self.clock.timestamp(), confirmation=confirmation)
            customer = self.customer(link.customer_id)
        except WebhookError as exc:
            return self._refused(lang, exc.status)
        except NotFoundError:
            return self._refused(lang, 403)
        lang = _language(customer.locale) if customer.locale else lang
        texts = TEXTS[lang]
        evidence = _evidence(self.clock.timestamp(), client, headers)
        if confirmation:
            if method != "POST":
                form = (f"<p>{escape(texts['confirm_intro'])}</p><form method=\"post\" action=\"{escape(path)}\">"
                        f"<button type=\"submit\">{escape(texts['confirm'])}</button></form>")
                return _page(lang, texts["confirm_title"], form)
            try:
                self.confirm(token, evidence=evidence)
            except WebhookError as exc:
                return self._refused(lang, exc.status)
            log.info("double_opt_in_confirmed", channel=link.channel)
            done = f'<p class="status" role="status">{escape(texts["confirmed"])}</p>'
            return _page(lang, texts["confirm_title"], done)
        if method == "POST":
            posted = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
            if posted.get("action") == "unsubscribe_all":
                entries = [(ALL_TOPICS, "all", False)]
                outcome = "all"
            else:
                entries = [(name, channel, f"{name}:{channel}" in posted)
                           for name, topic in self.topics.by_name.items() if not topic.transactional
                           for channel in topic.channels]
                outcome = "saved"
            if entries:
                self.ledger.store_choices(customer.id, entries, source="preference-centre", evidence=evidence)
            log.info("preferences_changed", via="preference-centre", entries=len(entries))
            return WebhookResponse(status=303, body=b"",
                                   headers={"location": f"{path}?done={outcome}", "cache-control": "no-store"})
        return self._form(lang, customer, path, dict(parse_qsl(query)).get("done"))

    def _form(self, lang: str, customer: Customer, path: str, done: str | None) -> WebhookResponse:
        texts = TEXTS[lang]
        choices = self.topics.choices(customer.preferences)
        parts: list[str] = []
        if done in ("saved", "all"):
            parts.append(f'<p class="status" role="status">{escape(texts["saved" if done == "saved" else "all_done"])}'
                         "</p>")
        parts.append(f"<p>{escape(texts['intro'])}</p>")
        parts.append(f'<form method="post" action="{escape(path)}">')
        for name, topic in self.topics.by_name.items():
            if topic.transactional:
                continue
            legend = escape(topic.label_for(lang))
            boxes = []
            for channel in topic.channels:
                box_id = escape(f"t-{name}-{channel}")
                checked = " checked" if choices[name][channel] else ""
                boxes.append(f'<label for="{box_id}"><input type="checkbox" id="{box_id}" '
                             f'name="{escape(name)}:{escape(channel)}" value="on"{checked}> '
                             f"{escape(texts.get(channel, channel))}</label>")
            parts.append(f"<fieldset><legend>{legend}</legend>{''.join(boxes)}</fieldset>")
        parts.append(f'<button type="submit">{escape(texts["save"])}</button></form>')
        parts.append(f'<form method="post" action="{escape(path)}"><input type="hidden" name="action" '
                     f'value="unsubscribe_all"><p class="help" id="all-help">{escape(texts["all_help"])}</p>'
                     f'<button type="submit" class="secondary" aria-describedby="all-help">'
                     f"{escape(texts['all'])}</button></form>")
        return _page(lang, texts["title"], "".join(parts))

    def _refused(self, lang: str, status: int) -> WebhookResponse:
        texts = TEXTS[lang]
        why = texts["expired"] if status == 410 else texts["tampered"]
        return _page(lang, texts["refused"], f"<p>{escape(why)}</p>", status=403)


def _accepted(headers: Mapping[str, str]) -> str | None:
    """The first language of `Accept-Language`, for pages shown before the customer is known."""
    value = next((v for k, v in headers.items() if k.lower() == "accept-language"), "")
    first = value.split(",")[0].split(";")[0].strip()
    return first or None


def _evidence(now: float, client: str | None, headers: Mapping[str, str]) -> str:
    agent = next((v for k, v in headers.items() if k.lower() == "user-agent"), "")
    when = datetime.fromtimestamp(now, UTC).isoformat(timespec="seconds")
    return f"at {when} from {client or 'unknown'} user-agent {quote(agent[:200], safe=' /;:.,()')}"
