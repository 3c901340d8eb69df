"""Assign and expose in one place, so a journey step and an app's own call agree on who saw what.

The variant is the pure hash of `Split`; the first exposure stored for the customer then wins (a
customer keeps their variant if the shares change later). Members of the global control group get a
variant but are not exposed to a marketing experiment: they receive none of its messages, and counting
them would only dilute the difference.
"""

from __future__ import annotations

from .._customers import PURPOSES
from .._errors import ValidationError
from ..store import Transaction
from ..store._experiments import Exposure, record_exposure
from ._assign import GlobalControl, Split

__all__ = ["expose"]

def expose(tx: Transaction, split: Split, experiment: str, customer_id: str, *, now: float,
           global_control: GlobalControl | None, purpose: str = "marketing", run_id: str | None = None,
           journey: str | None = None) -> tuple[str, bool]:
    """The customer's variant of `experiment`, and whether an exposure counts for them (it is stored
    once, at the first call)."""
    if purpose not in PURPOSES:
        raise ValidationError(f"expected one of {', '.join(PURPOSES)}", field="purpose", value=purpose)
    chosen = split.variant(experiment, customer_id)
    exposed = purpose != "marketing" or global_control is None or not global_control.includes(customer_id)
    if exposed:
        chosen = record_exposure(tx, Exposure(experiment=experiment, customer_id=customer_id, variant=chosen,
                                              exposed_at=now, run_id=run_id, journey=journey))
    return chosen, exposed
