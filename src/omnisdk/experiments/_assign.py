"""Who gets which variant, and who is in the global control group: a pure function of names and ids.

A customer's place is a point in [0, 1) read from a BLAKE2b digest of the experiment name and the
customer id (each length-prefixed, so ("ab", "c") and ("a", "bc") differ). The digest is the same on
every process, platform and Python version (Python's own `hash()` is salted per process), so workers,
replays and new journey versions all agree without storing anything. Variants take consecutive slices of
[0, 1) in order of their names, so writing the same shares in another order changes nothing.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterable, Mapping

import attrs

from .._errors import ValidationError

__all__ = ["GlobalControl", "Split", "assign", "position"]

_SHARE_TOLERANCE = 1e-9  # shares written as decimals (0.1 + 0.2 + 0.7) need not add up to exactly 1.0
_EXPERIMENT_DOMAIN = b"omnisdk.variant"  # BLAKE2b personalisation: experiment and control points are unrelated
_CONTROL_DOMAIN = b"omnisdk.control"


def position(domain: bytes, *parts: str) -> float:
    """A uniform point in [0, 1) from the parts' digest: 53 bits, so every value is an exact float."""
    digest = hashlib.blake2b(digest_size=8, person=domain)
    for part in parts:
        encoded = part.encode("utf-8")
        digest.update(len(encoded).to_bytes(8, "big"))
        digest.update(encoded)
    return (int.from_bytes(digest.digest(), "big") >> 11) / 2.0**53


def _require_name(value: object, field: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValidationError("must be a non-empty string", field=field, value=value)
    return value


def _shares(shares: Mapping[str, float]) -> dict[str, float]:
    if not isinstance(shares, Mapping) or not shares:
        raise ValidationError("must map at least one variant name to its share", field="shares", value=shares)
    checked: dict[str, float] = {}
    for name in sorted(shares):
        share = shares[name]
        _require_name(name, "shares")
        if isinstance(share, bool) or not isinstance(share, int | float) or not math.isfinite(share) or share < 0:
            raise ValidationError(f"share of {name!r} must be a finite number >= 0", field=f"shares.{name}",
                                  value=share)
        checked[name] = float(share)
    total = math.fsum(checked.values())
    if abs(total - 1.0) > _SHARE_TOLERANCE:
        raise ValidationError(f"shares must add up to 1, not {total:g}", field="shares", value=dict(shares))
    return checked


def _names(names: Iterable[str]) -> frozenset[str]:
    if isinstance(names, str):  # "holdout" would be read as its letters
        raise ValidationError("must be a collection of variant names, not one string", field="holdouts", value=names)
    return frozenset(names)


@attrs.frozen
class Split:
    """The variants of one experiment, their shares of traffic, and which of them send no message.

    `holdouts` name the variants that receive nothing ("no message"): they are measured like any other,
    and are the natural control.
    """

    shares: Mapping[str, float] = attrs.field(converter=_shares)
    holdouts: frozenset[str] = attrs.field(default=frozenset(), converter=_names)

    @holdouts.validator
    def _known(self, _attribute: object, holdouts: frozenset[str]) -> None:
        unknown = sorted(holdouts - set(self.shares))
        if unknown:
            raise ValidationError(f"not among the variants: {', '.join(map(repr, unknown))}", field="holdouts",
                                  value=sorted(holdouts))

    def variant(self, experiment: str, customer_id: str) -> str:
        """The customer's variant: the slice of [0, 1) their point falls in (zero shares never win)."""
        point = position(_EXPERIMENT_DOMAIN, _require_name(experiment, "experiment"),
                         _require_name(customer_id, "customer_id"))
        upper = 0.0
        chosen = ""
        for name, share in self.shares.items():
            if share == 0:
                continue
            chosen = name
            upper += share
            if point < upper:
                return name
        return chosen  # the point is past the last bound only through rounding of the running sum

    def is_holdout(self, variant: str) -> bool:
        """True when the variant sends no message."""
        return variant in self.holdouts


def assign(experiment: str, customer_id: str, shares: Mapping[str, float]) -> str:
    """The customer's variant of `experiment` given the variants' shares (which must add up to 1)."""
    return Split(shares).variant(experiment, customer_id)


def _control_share(share: float) -> float:
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share < 1:
        raise ValidationError("must be a number in [0, 1)", field="global_control", value=share)
    return float(share)


@attrs.frozen
class GlobalControl:
    """The customers kept away from every marketing message, to measure what marketing as a whole earns.

    Membership depends on the customer id and `salt` only, so it holds across journeys, broadcasts and
    workers; changing the salt (say, to the year) rotates the group so nobody stays out forever.
    """

    share: float = attrs.field(converter=_control_share)
    salt: str = attrs.field(default="", validator=attrs.validators.instance_of(str))

    def includes(self, customer_id: str) -> bool:
        """True when the customer belongs to the group."""
        return position(_CONTROL_DOMAIN, self.salt, _require_name(customer_id, "customer_id")) < self.share
