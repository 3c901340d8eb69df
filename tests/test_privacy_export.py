"""`omni.export` and the `omnisdk export|forget|retention` commands: one JSON document with everything
seeded about the customer, consent history with evidence included, the same shape on both stores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from omnisdk import VirtualClock
from omnisdk.cli import main
from omnisdk.errors import NotFoundError
from privacy_seed import ADA, ADA_VALUES, BOB, open_shop, seed


def test_export_holds_everything_seeded(store_url: str, clock: VirtualClock) -> None:
    with open_shop(store_url, clock) as omni:
        seed(omni)
        document = omni.export({"phone": ADA_VALUES["phone"]})
    assert json.loads(json.dumps(document)) == document  # JSON as it is
    assert (document["format"], document["version"], document["customer_id"]) == ("omnisdk.export", 1, ADA)
    profile = document["profile"]
    assert profile["traits"] == {"first_name": "Augusta", "last_name": "Lovelace"}
    assert profile["address"]["line1"] == ADA_VALUES["street"]
    assert (profile["timezone"], profile["locale"]) == ("Europe/London", "en-GB")
    tables = document["tables"]
    assert {(i["kind"], i["value"]) for i in tables["identities"]} == {
        ("user_id", ADA), ("anonymous_id", ADA_VALUES["anonymous id"]), ("email", ADA_VALUES["email"]),
        ("phone", ADA_VALUES["phone"]), ("fcm_token", ADA_VALUES["push token"]),
        ("messenger_psid", ADA_VALUES["messenger id"])}
    assert sorted((c["channel"], bool(c["granted"]), c["source"], c["evidence"]) for c in tables["consents"]) == [
        ("direct_mail", True, "checkout-form", None), ("email", True, "checkout-form", None),
        ("sms", False, "sms-reply", f"SM-reply-from-{ADA_VALUES['phone']}")]
    touchpoints = {(t["channel"], t["name"]) for t in tables["touchpoints"]}
    assert {("web", "Product Viewed"), ("pos", "Order Completed")} <= touchpoints
    [quarantined] = tables["quarantine"]  # the Signed Up no read could decode, set aside
    assert quarantined["origin"] == "touchpoints" and ADA_VALUES["note"] in quarantined["row_values"]
    viewed = next(t for t in tables["touchpoints"] if t["name"] == "Product Viewed")
    assert viewed["properties"]["ip"] == ADA_VALUES["ip"]  # from the merged anonymous profile
    assert viewed["customer_id"] == ADA and [m[:4] for m in document["merged_ids"]] == ["cus_"]
    sent = [d for d in tables["deliveries"] if d["status"] == "sent"]
    assert {d["channel"] for d in sent} == {"email", "direct_mail"}
    assert any(ADA_VALUES["first name"] in json.dumps(d["sent_content"]) for d in sent)
    assert all(d["provider_message_id"] for d in sent)
    assert {d["delivery_id"] for d in tables["delivery_decisions"]} <= {d["id"] for d in tables["deliveries"]}
    assert {r["journey"] for r in tables["journey_runs"]} == {"welcome-series", "review-request"}
    assert {s["step"] for s in tables["journey_steps"]} >= {"hello", "bought", "a-fortnight"}
    assert [(e["experiment"], e["variant"] in ("a", "b")) for e in tables["experiment_exposures"]] == [
        ("welcome-subject", True)]
    assert [m["segment"] for m in tables["segment_members"]] == ["buyers"]
    assert document["suppression"] == {"suppressed": False, "kinds": []}
    everything = json.dumps(document)
    assert BOB["email"] not in everything and BOB["customer id"] not in everything


def test_the_document_has_the_same_shape_on_every_store(tmp_path: Path, pg_schema_url: str) -> None:
    shapes = []
    for url in (f"sqlite:///{tmp_path}/omni.db", pg_schema_url):
        with open_shop(url, VirtualClock()) as omni:
            seed(omni)
            document = omni.export(ADA)
        shapes.append({t: sorted({k: type(v).__name__ for row in rows for k, v in row.items()
                                  if v is not None}.items()) for t, rows in document["tables"].items()})
    assert shapes[0] == shapes[1]


def test_the_commands_export_forget_and_show_retention(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path}/omni.db"
    config = tmp_path / "omnisdk.toml"
    config.write_text('[retention]\ntouchpoints = "25 months"\nwebhook_requests = "30 days"\n')
    with open_shop(url, VirtualClock()) as omni:
        omni.identify("c-1", email="one@example.com", traits={"first_name": "One"})
        omni.track("c-1", "Order Completed", {"revenue": 5.0}, channel="pos")
    out = tmp_path / "c-1.json"
    assert main(["--store", url, "export", "c-1", "-o", str(out)]) == 0
    assert json.loads(out.read_text())["profile"]["traits"] == {"first_name": "One"}
    assert main(["--store", url, "forget", "c-1", "--by", "dpo"]) == 1  # no --yes: refused
    assert "--yes" in capsys.readouterr().err
    assert main(["--store", url, "forget", "c-1", "--by", "dpo", "--reason", "ticket 7", "--yes"]) == 0
    printed = capsys.readouterr().out
    assert "done" in printed and "identities\t2" in printed and "one@example.com" not in printed
    assert main(["--store", url, "export", "c-1"]) == 1
    with open_shop(url, VirtualClock()) as omni, pytest.raises(NotFoundError):
        omni.export("c-1")
    assert main(["--store", url, "--config", str(config), "retention"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("rule\t")
    assert [line.split("\t")[:3] for line in table[1:]] == [["touchpoints", "760.922", "0"],
                                                             ["webhook_requests", "30", "0"]]
