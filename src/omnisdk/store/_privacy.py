"""The privacy registry: every table and column of the schema, classified, with what erasure does to it.

One place answers "where does a customer's data live, and what happens to it when they are
forgotten": `omni.forget` and `omni.export` are driven by this registry, and
`tests/test_privacy_registry.py` reads the live schema of both stores and fails on any table or
column it does not classify, so a table someone adds cannot be missed by an erasure.

Classes: `personal` (names, addresses, free text, anything that identifies or describes the
person), `pseudonymous` (ids that point at the person only through another table or a provider:
customer ids, provider message ids, idempotency keys) and `aggregate` (counts, amounts, times,
configuration: safe to keep once the row no longer points at anyone).

Actions on a column when its row is anonymised (rows of `forget="delete"` tables are deleted whole):
`keep`, `tombstone` (the customer reference becomes the request's tombstone id, so aggregates that
count customers still count one), `null`, `empty` (a JSON object `{}`), `empty_list` (`[]`),
`memo` (`{"v": null}`, a step memo's shape), `hash` (a keyed hash: still unique, no longer the value),
`scrub` (free text or JSON: the customer's identifiers, names and addresses replaced), `properties`
(touchpoint properties: only the configured keys kept, scrubbed), `cancel` (a run's or delivery's
status: an active one becomes `cancelled`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, Literal

import attrs

from ._base import Transaction

__all__ = ["ACTIONS", "REGISTRY", "ColumnRule", "TableRule", "json_columns", "live_schema"]

Kind = Literal["personal", "pseudonymous", "aggregate"]
Action = Literal["keep", "tombstone", "null", "empty", "empty_list", "memo", "hash", "scrub", "properties", "cancel"]
ACTIONS: Final = ("keep", "tombstone", "null", "empty", "empty_list", "memo", "hash", "scrub", "properties", "cancel")


@attrs.frozen
class ColumnRule:
    kind: Kind
    action: Action = "keep"


@attrs.frozen
class TableRule:
    """A table: its class, what an erasure does (`delete` rows, `anonymise` them, `scan` free text
    for the customer's values and delete what mentions them, or `none`), which rows are the
    customer's (`link`, SQL over the table with `{ids}` for the customer's ids), its key (the keyset
    an erasure walks in batches), its columns, and why it is handled so."""

    kind: Kind
    forget: Literal["delete", "anonymise", "scan", "none"]
    key: tuple[str, ...]
    columns: Mapping[str, ColumnRule]
    why: str
    link: str | None = None


P: Final[Kind] = "personal"
S: Final[Kind] = "pseudonymous"
A: Final[Kind] = "aggregate"


def _cols(**rules: tuple[Kind, Action] | Kind) -> dict[str, ColumnRule]:
    return {name: ColumnRule(r) if isinstance(r, str) else ColumnRule(*r) for name, r in rules.items()}


_OWN = "customer_id IN ({ids})"
_OF_DELIVERIES = "delivery_id IN (SELECT id FROM deliveries WHERE customer_id IN ({ids}))"
_OF_RUNS = "run_id IN (SELECT id FROM journey_runs WHERE customer_id IN ({ids}))"

#: In the order an erasure walks them. Rows found through a parent (decisions through deliveries,
#: steps through runs) match the tombstone too, so the order between them does not matter for a
#: resumed pass; runs come before deliveries, so no run of the customer's is left to queue a message
#: once deliveries are done.
REGISTRY: Final[Mapping[str, TableRule]] = {
    "delivery_decisions": TableRule(P, "anonymise", ("seq",), _cols(
        seq=A, delivery_id=S, at=A, actor=A, outcome=A, channel=A, policy=A, reason=(P, "scrub"), until=A,
        checks=(P, "null")), "the decision log: kept for the delivery KPIs and skip reasons, its free text scrubbed",
        link=_OF_DELIVERIES),
    "journey_steps": TableRule(P, "anonymise", ("run_id", "step"), _cols(
        run_id=S, step=A, kind=A, args=(P, "empty"), result=(P, "memo"), done=A, recorded_at=A),
        "step memos may hold anything a journey computed; the step names and counts stay", link=_OF_RUNS),
    "journey_runs": TableRule(P, "anonymise", ("id",), _cols(
        id=A, journey=A, version=A, customer_id=(S, "tombstone"), active_key=(S, "null"), status=(A, "cancel"),
        trigger=(P, "null"), trigger_seq=A, step=A, wait_event=A, due_at=A, lease_owner=A, attempts=A,
        reason=(P, "scrub"), created_at=A, updated_at=A, ended_at=A),
        "kept for journey counts; active runs cancelled, the trigger touchpoint removed", link=_OWN),
    "touchpoints": TableRule(P, "anonymise", ("seq",), _cols(
        seq=A, id=(S, "hash"), customer_id=(S, "tombstone"), channel=A, name=A, properties=(P, "properties"),
        occurred_at=A, recorded_at=A, routed=A),
        "kept with amounts so revenue, funnels and attribution still add up; properties other than the "
        "configured safe keys (IP, user agent, free text, addresses) removed", link=_OWN),
    "deliveries": TableRule(P, "anonymise", ("id",), _cols(
        id=A, idempotency_key=(S, "hash"), customer_id=(S, "tombstone"), template=A, channels=A, channel=A,
        provider=A, purpose=A, data=(P, "empty"), run_id=S, journey=A, step=A, broadcast_id=A,
        status=(A, "cancel"), attempts=A, due_at=A, lease_owner=A, lease_until=A,
        provider_message_id=(S, "null"), address=(P, "null"), error=(P, "scrub"), decisions=(P, "empty_list"),
        cost=A, segments=A, failed_channels=A, fallback_after=A, fallback_due=A, parent_id=A, sent_at=A,
        created_at=A, updated_at=A, attempted_at=A, sent_content=(P, "null"), lookups=A, traceparent=A),
        "kept for the delivery KPIs (sent, delivered, cost); the rendered content, address and provider id "
        "removed; queued ones cancelled", link=_OWN),
    "experiment_exposures": TableRule(S, "anonymise", ("experiment", "customer_id"), _cols(
        experiment=A, customer_id=(S, "tombstone"), variant=A, run_id=A, journey=A, exposed_at=A),
        "kept so experiment results still add up, pointing at the tombstone", link=_OWN),
    "merges": TableRule(S, "anonymise", ("id",), _cols(
        id=A, winner_id=(S, "tombstone"), loser_id=(S, "tombstone"), reason=A, merged_at=A),
        "the merge feed journeys reconcile after; both sides become the tombstone",
        link="winner_id IN ({ids}) OR loser_id IN ({ids})"),
    "segment_members": TableRule(S, "delete", ("segment", "customer_id"), _cols(
        segment=A, customer_id=S, entered_at=A, seen_at=A), "membership says something about the person", link=_OWN),
    "consents": TableRule(P, "delete", ("id",), _cols(
        id=A, customer_id=S, channel=A, purpose=A, granted=A, source=P, recorded_at=A, evidence=P),
        "the ledger goes with the profile: the suppression record keeps them unsubscribed", link=_OWN),
    "preferences": TableRule(P, "delete", ("id",), _cols(
        id=A, customer_id=S, topic=A, channel=A, subscribed=A, source=P, evidence=P, recorded_at=A),
        "the topic choices go with the profile, evidence (IP, user agent) included", link=_OWN),
    "opt_in_requests": TableRule(P, "delete", ("id",), _cols(
        id=S, customer_id=S, channel=A, purpose=A, source=P, status=A, requested_at=A, expires_at=A,
        confirmed_at=A, evidence=P, delivery_id=S),
        "double opt-in requests and their confirmation evidence are the person's", link=_OWN),
    "catalog_subscriptions": TableRule(S, "delete", ("customer_id", "sku", "location"), _cols(
        customer_id=S, sku=A, location=A, source=A, created_at=A, notified_at=A),
        "back-in-stock requests are the person's", link=_OWN),
    "catalog_interest": TableRule(S, "delete", ("customer_id", "sku"), _cols(
        customer_id=S, sku=A, viewed_at=A, carted_at=A, purchased_at=A, first_purchased_at=A, purchases=A,
        reorder_due_at=A, browse_sent_at=A, price_sent_at=A, low_stock_sent_at=A),
        "browsing and buying history per product", link=_OWN),
    "predictions": TableRule(S, "delete", ("customer_id",), _cols(
        customer_id=S, expected_purchases=P, probability_alive=P, churn_risk=P, expected_order_value=P,
        predicted_clv=P, horizon_days=A, scored_at=A, model_id=A, stale=A),
        "a profile of the person (predicted value and churn)", link=_OWN),
    "identities": TableRule(P, "delete", ("kind", "value"), _cols(
        kind=A, value=P, customer_id=S, created_at=A),
        "every identifier; each is kept only as a keyed hash in `suppressions`", link=_OWN),
    "customers": TableRule(P, "delete", ("id",), _cols(
        id=S, traits=P, timezone=P, locale=P, address=P, preferred_channels=P, created_at=A, updated_at=A,
        merged_into=S), "the profile, and the profiles merged into it", link="id IN ({ids})"),
    "quarantine": TableRule(P, "scan", ("id",), _cols(
        id=A, origin=A, row_key=P, row_values=P, error_type=A, error=P, quarantined_at=A, repair_error=P),
        "undecodable rows of any table: deleted when they mention the customer"),
    # Tables no row of which belongs to a customer.
    "events": TableRule(P, "delete", ("seq",), _cols(
        seq=A, kind=A, subject_id=S, customer_id=S, name=A, channel=A, data=P, occurred_at=A, recorded_at=A),
        "the outbound event stream (touchpoint properties included): the customer's entries deleted; "
        "what receivers already took is theirs to erase", link=_OWN),
    "event_webhook_outbox": TableRule(S, "delete", ("endpoint", "seq"), _cols(
        endpoint=A, seq=A, customer_key=S, attempts=A, due_at=A, last_status=A),
        "events not yet acknowledged by an endpoint: the customer's dropped, not sent after the erasure",
        link="customer_key IN ({ids})"),
    "event_webhook_cursors": TableRule(A, "none", ("endpoint",), _cols(endpoint=A, seq=A),
                                       "how far each endpoint has taken the stream"),
    "webhook_events": TableRule(S, "none", ("provider", "event_id"), _cols(provider=A, event_id=S, received_at=A),
                                "provider event ids only (dedupe), pruned by retention"),
    "webhook_requests": TableRule(S, "none", ("provider", "nonce"), _cols(
        provider=A, nonce=S, digest=S, received_at=A),
        "a digest of each verified request (replay defence), no content; pruned by retention"),
    "broadcasts": TableRule(A, "none", ("id",), _cols(
        id=A, name=A, template=A, channels=A, purpose=A, data=A, segment_sql=A, segment_params=A, segment_now=A,
        timing=A, send_at=A, local_time=A, local_date=A, within_seconds=A, status=A, start_at=A, evaluated_at=A,
        audience=A, after_customer=S, enqueued=A, lease_owner=A, lease_until=A, error=A, created_at=A,
        updated_at=A, enqueued_at=A),
        "the plan of a message to a segment; its keyset cursor may be a customer id, meaningless once the "
        "profile is gone"),
    "sendtime_prior": TableRule(A, "none", ("channel", "hour"), _cols(channel=A, hour=A, weight=A, computed_at=A),
                                "engagement by hour summed over everyone"),
    "signing_keys": TableRule(A, "none", ("name",), _cols(name=A, secret=A, created_at=A),
                              "the store's own keys"),
    "journey_cursors": TableRule(A, "none", ("name",), _cols(name=A, position=A), "feed positions"),
    "schema_migrations": TableRule(A, "none", ("version",), _cols(version=A, name=A, applied_at=A),
                                   "migrations applied"),
    "catalog_variants": TableRule(A, "none", ("sku",), _cols(
        sku=A, product_id=A, title=A, price=A, currency=A, url=A, image_url=A, category=A, brand=A, attributes=A,
        updated_at=A), "the shop's products"),
    "catalog_inventory": TableRule(A, "none", ("sku", "location"), _cols(
        sku=A, location=A, quantity=A, updated_at=A), "stock per location"),
    "catalog_changes": TableRule(A, "none", ("seq",), _cols(
        seq=A, sku=A, kind=A, location=A, old_value=A, new_value=A, source=A, changed_at=A, handled=A),
        "price and stock changes"),
    "prediction_models": TableRule(A, "none", ("id",), _cols(
        id=A, fitted_at=A, params=A, customers=A, scored_seq=A, scored_at=A), "model parameters fitted on everyone"),
    "forget_requests": TableRule(S, "none", ("id",), _cols(
        id=A, requested_by=A, reason=A, status=A, subject=P, progress=A, removed=A, plugin_errors=A,
        plugin_attempts=A, due_at=A, requested_at=A, updated_at=A, finished_at=A),
        "the request log: `subject` (what an unfinished erasure needs to resume) is cleared when it is done"),
    "suppressions": TableRule(S, "none", ("digest",), _cols(digest=S, kind=A, request_id=A, created_at=A),
                              "keyed hashes of forgotten identifiers, so they are not re-subscribed"),
    "retention_runs": TableRule(A, "none", ("name",), _cols(name=A, last_run_at=A, removed=A),
                                "when each retention rule last ran"),
}


def live_schema(tx: Transaction) -> dict[str, list[str]]:
    """Every table of the store and its columns, as the database itself lists them."""
    if tx.dialect.name == "postgresql":
        rows = tx.query(
            "SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema() "
            "ORDER BY table_name, ordinal_position")
    else:
        rows = tx.query(
            "SELECT m.name, p.name FROM sqlite_master AS m, pragma_table_info(m.name) AS p "
            "WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.cid")
    schema: dict[str, list[str]] = {}
    for table, column in rows:
        schema.setdefault(str(table), []).append(str(column))
    return schema


def json_columns() -> frozenset[tuple[str, str]]:
    """(table, column) of every JSON column, read from the migrations (`{json}` columns): JSONB on
    PostgreSQL, text on SQLite, decoded alike for an export."""
    from ._base import migrations

    found: set[tuple[str, str]] = set()
    for _, _, sql in migrations():
        for table, body in re.findall(r"CREATE TABLE (\w+) \((.*?)\n\)", sql, flags=re.DOTALL):
            found.update((table, column) for column in re.findall(r"^\s*(\w+) \{json\}", body, flags=re.M))
        found.update(re.findall(r"ALTER TABLE (\w+) ADD COLUMN (\w+) \{json\}", sql))
    return frozenset(found)
