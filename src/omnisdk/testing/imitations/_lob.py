"""Lob Print & Mail: postcards, letters, US and international verifications, with Lob's idempotency keys."""

from __future__ import annotations

import re
import secrets
from datetime import date, datetime, timedelta
from typing import Any

import attrs
from aiohttp import web

from ._base import Imitation, route
from ._call import Call, Problem
from ._util import hex_id, now

__all__ = ["LobImitation"]

_CODES = {401: "unauthorized", 404: "not_found", 422: "invalid", 429: "rate_limit_exceeded"}
_CODES |= {500: "internal_server_error", 503: "service_unavailable"}
_MESSAGES = {
    401: "Your API key is not valid. Please sign up on lob.com to get a valid api key.",
    429: "Rate limit exceeded. Please wait 5 seconds and try your request again.",
    500: "An internal server error occurred, please contact support@lob.com",
    503: "Service is temporarily unavailable. Please try again later.",
}
_DELIVERABILITY = "deliverable deliverable_unnecessary_unit deliverable_incorrect_unit deliverable_missing_unit"
_DELIVERABILITY += " undeliverable"
# International verifications: outcome (named by the primary line, as with Lob's test keys) -> status.
_INTL_STATUS = {"deliverable": "LV4", "deliverable_missing_info": "LM4", "undeliverable": "LU1", "no_match": "LU1"}
# Business days from the send date to delivery, per mail type (USPS first class 3-5, standard 7-10).
_TRANSIT = {"usps_first_class": 4, "usps_standard": 8}


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _business_days_after(start: date, days: int) -> date:
    while days:
        start += timedelta(days=1)
        days -= start.weekday() < 5
    return start


@attrs.define(kw_only=True, slots=False, eq=False)
class LobImitation(Imitation):
    """api.lob.com/v1: HTTP Basic with the key as user; `Idempotency-Key` returns the first resource.

    Created mail pieces are in `postcards` and `letters` (Lob's JSON resources, by id).
    US and international verifications answer "deliverable" unless the primary line names another
    outcome ("undeliverable", "deliverable_missing_unit", ...), like Lob's test keys.
    """

    contract = "lob_print_mail.json"
    invalid_status = 422

    api_key: str = attrs.field(default="test_0123456789abcdef", repr=False)
    postcards: dict[str, dict[str, Any]] = attrs.field(factory=dict, init=False, repr=False)
    letters: dict[str, dict[str, Any]] = attrs.field(factory=dict, init=False, repr=False)
    _idempotent: dict[tuple[str, str], dict[str, Any]] = attrs.field(factory=dict, init=False, repr=False)

    def authenticate(self, call: Call) -> bool:
        return call.basic_auth() == (self.api_key, "")

    def error(self, status: int, problem: Problem | None = None) -> web.StreamResponse:
        message = _MESSAGES.get(status, "bad request")
        if problem is not None and problem.where != "auth":
            required = problem.reason in ("required", "missing")
            message = f"{problem.field} is required" if required else problem.message
        body = {"error": {"message": message, "status_code": status, "code": _CODES.get(status, "bad_request")}}
        return web.json_response(body, status=status)

    def throttled(self, retry_after: int) -> web.StreamResponse:
        response = super().throttled(retry_after)
        reset = str(int(now().timestamp()) + retry_after)
        for prefix in ("X-Rate-Limit-", "ratelimit-"):
            response.headers.update({prefix + "Limit": "150", prefix + "Remaining": "0", prefix + "Reset": reset})
        return response

    @route("POST", "/v1/postcards", check="post /postcards")
    def create_postcard(self, call: Call) -> web.StreamResponse:
        return self._create(call, "postcard", self.postcards)

    @route("POST", "/v1/letters", check="post /letters")
    def create_letter(self, call: Call) -> web.StreamResponse:
        return self._create(call, "letter", self.letters)

    @route("GET", "/v1/postcards/{psc_id}", check="get /postcards/{psc_id}")
    def get_postcard(self, call: Call) -> web.StreamResponse:
        return self._fetch(call, "postcard", self.postcards, call.params["psc_id"])

    @route("GET", "/v1/letters/{ltr_id}", check="get /letters/{ltr_id}")
    def get_letter(self, call: Call) -> web.StreamResponse:
        return self._fetch(call, "letter", self.letters, call.params["ltr_id"])

    def _fetch(self, call: Call, kind: str, store: dict[str, dict[str, Any]], key: str) -> web.StreamResponse:
        if key not in store:
            return self.error(404, Problem("path", f"{kind} not found", reason="not_found"))
        return web.json_response(store[key])

    def _create(self, call: Call, kind: str, store: dict[str, dict[str, Any]]) -> web.StreamResponse:
        key = call.headers.get("Idempotency-Key") or call.query.get("idempotency_key")
        if key and (kind, key) in self._idempotent:
            return web.json_response(self._idempotent[(kind, key)])
        body, moment = call.json, now()
        ident = hex_id("psc_" if kind == "postcard" else "ltr_", 8)
        send = datetime.fromisoformat(body["send_date"]) if body.get("send_date") else moment
        mail_type = body.get("mail_type", "usps_first_class")
        folder = kind + "s"
        resource = {
            "id": ident,
            "description": body.get("description"),
            "metadata": body.get("metadata", {}),
            "to": self._address(body["to"], moment),
            "url": self._signed(folder, ident, ".pdf"),
            "carrier": "USPS",
            "thumbnails": [
                {size: self._signed(folder, ident, f"_thumb_{size}_{page}.png") for size in ("small", "large")}
                for page in (1, 2)
            ],
            "expected_delivery_date": _business_days_after(send.date(), _TRANSIT[mail_type]).isoformat(),
            "date_created": _iso(moment),
            "date_modified": _iso(moment),
            "send_date": _iso(send),
            "mail_type": mail_type,
            "merge_variables": body.get("merge_variables"),
            "use_type": body.get("use_type"),
            "fsc": False,
            "tracking_events": [],
            "object": kind,
        }
        if body.get("from"):
            resource["from"] = self._address(body["from"], moment)
        if kind == "postcard":
            resource |= {"size": body.get("size", "4x6"), "front_template_id": None, "back_template_id": None}
        else:
            resource |= {
                "color": body.get("color", False),
                "double_sided": body.get("double_sided", True),
                "address_placement": body.get("address_placement", "top_first_page"),
                "return_envelope": False,
                "extra_service": body.get("extra_service"),
                "template_id": None,
            }
        store[ident] = resource
        if key:
            self._idempotent[(kind, key)] = resource
        return web.json_response(resource)

    @staticmethod
    def _signed(folder: str, ident: str, suffix: str) -> str:
        expires = int(now().timestamp()) + 30 * 86400
        return (
            f"https://lob-assets.com/{folder}/{ident}{suffix}?version=v1&expires={expires}"
            f"&signature={secrets.token_urlsafe(32)}"
        )

    @staticmethod
    def _address(given: Any, moment: datetime) -> dict[str, Any]:
        fields = given if isinstance(given, dict) else {"name": "ADDRESS " + str(given)}
        upper = {k: (v.upper() if isinstance(v, str) else v) for k, v in fields.items()}
        return {
            "id": given if isinstance(given, str) else hex_id("adr_", 7),
            "description": fields.get("description"),
            "name": upper.get("name"),
            "company": upper.get("company"),
            "phone": fields.get("phone"),
            "email": fields.get("email"),
            "address_line1": upper.get("address_line1", "210 KING ST"),
            "address_line2": upper.get("address_line2"),
            "address_city": upper.get("address_city", "SAN FRANCISCO"),
            "address_state": upper.get("address_state", "CA"),
            "address_zip": upper.get("address_zip", "94107"),
            "address_country": "UNITED STATES",
            "metadata": fields.get("metadata", {}),
            "date_created": _iso(moment),
            "date_modified": _iso(moment),
            "object": "address",
        }

    @route("POST", "/v1/us_verifications", check="post /us_verifications")
    def verify_us_address(self, call: Call) -> web.StreamResponse:
        body = call.json
        primary = str(body.get("primary_line") or body.get("address") or "").upper()
        outcome = primary.lower() if primary.lower() in _DELIVERABILITY.split() else "deliverable"
        zip_code = str(body.get("zip_code") or "".join(re.findall(r"\b\d{5}\b", primary)[-1:]) or "94107")
        city, state = str(body.get("city", "SAN FRANCISCO")).upper(), str(body.get("state", "CA")).upper()
        number, _, street = primary.partition(" ")
        deliverable = outcome != "undeliverable"
        components: dict[str, Any] = dict.fromkeys(
            ("street_predirection", "street_postdirection", "secondary_designator", "secondary_number"), ""
        )
        components |= dict.fromkeys(("pmb_designator", "pmb_number", "extra_secondary_designator"), "")
        components |= {
            "primary_number": number,
            "street_name": street,
            "street_suffix": "",
            "extra_secondary_number": "",
            "city": city,
            "state": state,
            "zip_code": zip_code,
            "zip_code_plus_4": "1741",
            "zip_code_type": "standard",
            "delivery_point_barcode": zip_code + "174110",
            "address_type": "commercial",
            "record_type": "street",
            "default_building_address": False,
            "county": city,
            "county_fips": "06075",
            "carrier_route": "C032",
            "carrier_route_type": "city_delivery",
            "po_box_only_flag": "N",
        }
        analysis: dict[str, Any] = dict.fromkeys(
            ("dpv_cmra", "dpv_vacant", "dpv_throwback", "dpv_non_delivery_day_flag"), "N"
        )
        analysis |= dict.fromkeys(("dpv_no_secure_location", "dpv_door_not_accessible"), "N")
        analysis |= dict.fromkeys(("dpv_inactive_reason", "dpv_non_delivery_day_values", "lacs_indicator"), "")
        analysis |= {
            "dpv_confirmation": "Y" if deliverable else "N",
            "dpv_active": "Y" if deliverable else "N",
            "dpv_footnotes": ["AA", "BB"] if deliverable else ["M1"],
            "ews_match": False,
            "lacs_return_code": "",
            "suite_return_code": "",
        }
        verification = {
            "id": hex_id("us_ver_", 7),
            "recipient": str(body.get("recipient", "")).upper(),
            "primary_line": primary,
            "secondary_line": str(body.get("secondary_line", "")).upper(),
            "urbanization": "",
            "last_line": f"{city} {state} {zip_code}-1741",
            "deliverability": outcome,
            "valid_address": deliverable,
            "components": components,
            "deliverability_analysis": analysis,
            "lob_confidence_score": {"score": 100 if deliverable else 0, "level": "high" if deliverable else "low"},
            "object": "us_verification",
        }
        return web.json_response(verification)

    @route("POST", "/v1/intl_verifications", check="post /intl_verifications")
    def verify_intl_address(self, call: Call) -> web.StreamResponse:
        body = call.json
        primary = str(body.get("primary_line") or body.get("address") or "").upper()
        outcome = primary.lower() if primary.lower() in _INTL_STATUS else "deliverable"
        city, state = str(body.get("city", "")).upper(), str(body.get("state", "")).upper()
        postal_code = str(body.get("postal_code", "")).upper()
        number, _, street = primary.partition(" ")
        verification = {
            "id": hex_id("intl_ver_", 7),
            "recipient": str(body.get("recipient", "")).upper(),
            "primary_line": primary,
            "secondary_line": str(body.get("secondary_line", "")).upper(),
            "last_line": " ".join(part for part in (city, state, postal_code) if part),
            "country": str(body["country"]),
            "coverage": "SUBBUILDING",
            "deliverability": outcome,
            "status": _INTL_STATUS[outcome],
            "components": {"primary_number": number, "street_name": street, "city": city, "state": state,
                           "postal_code": postal_code},
            "object": "intl_verification",
        }
        return web.json_response(verification)
