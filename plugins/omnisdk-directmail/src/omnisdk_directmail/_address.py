"""Postal addresses: omnisdk's address mapping to Lob's verification request, and the verified result
to the inline address Lob prints.

Printing the address Lob verified (standardised, ZIP+4) rather than the one typed at checkout is
what keeps returned mail down.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs

__all__ = ["US_REGIONS", "AddressProblem", "VerifiedAddress", "verification_request", "verified_address"]

#: Countries Lob verifies and mails as US addresses (the US verification API covers them).
US_REGIONS: Final = frozenset({"US", "AS", "PR", "FM", "GU", "MH", "MP", "PW", "VI"})
#: What Lob's verifications call deliverable enough to print, per API.
UNDELIVERABLE: Final = frozenset({"undeliverable", "no_match"})
PARTIAL: Final = frozenset({"deliverable_incorrect_unit", "deliverable_missing_unit", "deliverable_missing_info"})
MAX_NAME = 40


class AddressProblem(Exception):
    """The customer's address cannot be used; the message says which part."""


@attrs.frozen
class VerifiedAddress:
    """A verified address: the inline `to` object for a mail piece, and how deliverable Lob judged it."""

    to: Mapping[str, str]
    deliverability: str

    @property
    def international(self) -> bool:
        return self.to.get("address_country") != "US"


def _text(address: Mapping[str, Any], key: str) -> str:
    value = address.get(key)
    return value.strip() if isinstance(value, str) else ""


def verification_request(address: Mapping[str, Any] | None) -> tuple[str, dict[str, str]]:
    """(path, JSON body) of the Lob verification for this address: US or international."""
    if not isinstance(address, Mapping):
        raise AddressProblem("the customer has no postal address")
    line1 = _text(address, "line1")
    if not line1:
        raise AddressProblem("address.line1 is missing")
    country = (_text(address, "country") or "US").upper()
    if len(country) != 2 or not country.isalpha():
        raise AddressProblem(f"address.country must be an ISO 3166 two-letter code, got {country!r}")
    city, state, postal_code = _text(address, "city"), _text(address, "state"), _text(address, "postal_code")
    body = {"primary_line": line1}
    if line2 := _text(address, "line2"):
        body["secondary_line"] = line2
    if name := _text(address, "name"):
        body["recipient"] = name
    if country in US_REGIONS:
        if not postal_code and not (city and (state or country != "US")):
            raise AddressProblem("a US address needs a postal_code, or a city and a state")
        state = state or (country if country != "US" else "")
        body.update({k: v for k, v in (("city", city), ("state", state), ("zip_code", postal_code)) if v})
        return "/us_verifications", body
    body["country"] = country
    body.update({k: v for k, v in (("city", city), ("state", state), ("postal_code", postal_code)) if v})
    return "/intl_verifications", body


def verified_address(result: Mapping[str, Any], name: str, *, us: bool, strict: bool) -> VerifiedAddress:
    """The printable address from a verification result; `AddressProblem` if Lob says it won't arrive."""
    deliverability = str(result.get("deliverability") or "")
    if deliverability in UNDELIVERABLE or (strict and deliverability in PARTIAL):
        raise AddressProblem(f"Lob address verification: {deliverability or 'no result'}")
    components = result.get("components") or {}
    to = {"name": (name or "Current Resident")[:MAX_NAME], "address_line1": str(result.get("primary_line") or "")}
    if secondary := result.get("secondary_line"):
        to["address_line2"] = str(secondary)
    if us:
        zip_code = str(components.get("zip_code") or "")
        if plus4 := components.get("zip_code_plus_4"):
            zip_code = f"{zip_code}-{plus4}"
        to.update(address_city=str(components.get("city") or ""), address_state=str(components.get("state") or ""),
                  address_zip=zip_code, address_country="US")
    else:
        to["address_country"] = str(result.get("country") or "")
        to.update({key: str(components[field]) for key, field in (
            ("address_city", "city"), ("address_state", "state"), ("address_zip", "postal_code"))
            if components.get(field)})
    return VerifiedAddress(to=to, deliverability=deliverability)
