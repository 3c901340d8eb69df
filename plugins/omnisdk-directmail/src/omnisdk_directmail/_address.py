"""Postal addresses: omnisdk's address mapping to Lob's verification request, and the verified result
to the inline address Lob prints.

Printing the address Lob verified (standardised, ZIP+4) rather than the one typed at checkout is
what keeps returned mail down. US addresses (and the US territories) go through the US verification
and print in Lob's US shape; every other country Lob mails to goes through the international
verification and prints in the international shape, with the limits Lob's OpenAPI sets for each.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

import attrs

__all__ = [
    "INTL_COUNTRIES",
    "US_REGIONS",
    "AddressProblem",
    "VerifiedAddress",
    "verification_request",
    "verified_address",
]

#: Countries Lob verifies and mails as US addresses (the US verification API covers them).
US_REGIONS: Final = frozenset({"US", "AS", "PR", "FM", "GU", "MH", "MP", "PW", "VI"})
#: Countries Lob mails to as international addresses: its `country_extended` enum, which is not
#: ISO 3166 (no PS, AM, GF, RE, ...; the old AN and CS still in). A test checks it against the spec.
_LOB_COUNTRIES = (
    "AD AE AF AG AI AL AN AO AQ AR AT AU AW AZ BA BB BD BE BF BG BH BI BJ BM BN BO BQ BR BS BT BW BY "
    "BZ CA CD CG CH CI CK CL CM CN CO CR CS CU CV CW CY CZ DE DJ DK DM DO DZ EC EE EG EH ER ES ET FI "
    "FJ FK FO FR GA GB GD GE GH GI GL GM GN GQ GR GS GT GW GY HK HN HR HT HU ID IE IL IN IO IQ IR IS "
    "IT JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MG MK "
    "ML MM MN MO MR MS MT MU MV MW MX MY MZ NA NE NF NG NI NL NO NP NR NU NZ OM PA PE PG PH PK PL PN "
    "PT PY QA RO RS RU RW SA SB SC SD SE SG SH SI SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TG TH TJ "
    "TK TL TM TN TO TR TT TV TW TZ UA UG UY UZ VA VC VE VG VN VU WS YE ZA ZM ZW"
)
INTL_COUNTRIES: Final = frozenset(_LOB_COUNTRIES.split())
#: What Lob's verifications call deliverable enough to print, per API.
UNDELIVERABLE: Final = frozenset({"undeliverable", "no_match"})
PARTIAL: Final = frozenset({"deliverable_incorrect_unit", "deliverable_missing_unit", "deliverable_missing_info"})
MAX_NAME = 40
#: Lob's longest street lines: `address_line1`/`address_line2` of a US and of an international address.
MAX_LINE_US = 64
MAX_LINE_INTL = 200
MAX_ZIP_INTL = 40
#: The international verification takes a postal code of at most 12 characters.
MAX_POSTAL_CODE_VERIFY = 12


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


def _fits(value: str, limit: int, field: str) -> str:
    if len(value) > limit:
        raise AddressProblem(f"{field} has {len(value)} characters; Lob takes at most {limit}")
    return value


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
    us = country in US_REGIONS
    if not us and country not in INTL_COUNTRIES:
        raise AddressProblem(f"address.country: Lob does not mail to {country}")
    city, state, postal_code = _text(address, "city"), _text(address, "state"), _text(address, "postal_code")
    limit = MAX_LINE_US if us else MAX_LINE_INTL
    body = {"primary_line": _fits(line1, limit, "address.line1")}
    if line2 := _text(address, "line2"):
        body["secondary_line"] = _fits(line2, limit, "address.line2")
    if name := _text(address, "name"):
        body["recipient"] = name
    if us:
        if not postal_code and not (city and (state or country != "US")):
            raise AddressProblem("a US address needs a postal_code, or a city and a state")
        state = state or (country if country != "US" else "")
        body.update({k: v for k, v in (("city", city), ("state", state), ("zip_code", postal_code)) if v})
        return "/us_verifications", body
    if not postal_code and not (city and state):
        raise AddressProblem("an international address needs a postal_code, or a city and a state")
    body["country"] = country
    _fits(postal_code, MAX_POSTAL_CODE_VERIFY, "address.postal_code")
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
        return VerifiedAddress(to=to, deliverability=deliverability)
    return VerifiedAddress(to=to | _intl_last_line(result, components), deliverability=deliverability)


def _intl_last_line(result: Mapping[str, Any], components: Mapping[str, Any]) -> dict[str, str]:
    """Country, city, state and postal code in Lob's international shape.

    Lob's spec takes *one of* city and state, or a postal code (a JSON Schema `oneOf`: an address with
    all three is refused). With a postal code the state is printed after the city, on the same line,
    which is where Lob would print it anyway ("SUMMERSIDE PE C1N 1C4").
    """
    country = str(result.get("country") or "").upper()
    if country not in INTL_COUNTRIES:
        raise AddressProblem(f"Lob's verification answered country {country!r}, which it does not mail to")
    city, state, postal_code = (str(components.get(k) or "").strip() for k in ("city", "state", "postal_code"))
    if postal_code:
        place = " ".join(part for part in (city, state) if part)
        shape = {"address_zip": _fits(postal_code, MAX_ZIP_INTL, "postal_code")}
        return {"address_country": country} | ({"address_city": place} if place else {}) | shape
    if not (city and state):
        raise AddressProblem("Lob's verification found neither a postal code nor a city and a state")
    return {"address_country": country, "address_city": city, "address_state": state}
