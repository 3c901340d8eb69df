"""Identity resolution: one person, many identifiers, one profile and one timeline."""

from __future__ import annotations

from omnisdk import Omni


def test_anonymous_then_email_then_pos_phone_is_one_customer(omni: Omni) -> None:
    omni.track({"anonymous_id": "web-7f3a"}, "Product Viewed", {"product_id": "sku-1"}, channel="web")
    omni.track({"anonymous_id": "web-7f3a", "email": "Ada@Example.com"}, "Signed Up", channel="web")
    ada = omni.identify("c-42", email="ada@example.com", phone="+14155550100", traits={"first_name": "Ada"})
    omni.track({"phone": "+1 415-555-0100", "square_customer_id": "SQ9"}, "Order Completed",
               {"order_id": "o-1", "revenue": 20.0}, channel="pos")

    timeline = omni.timeline("c-42")

    assert [(t.channel, t.name) for t in timeline] == [
        ("web", "Product Viewed"), ("web", "Signed Up"), ("pos", "Order Completed"),
    ]
    assert {t.customer_id for t in timeline} == {"c-42"}
    profile = omni.customer("c-42")
    assert profile.id == ada.id == "c-42"
    assert profile.identifiers("anonymous_id") == ["web-7f3a"]
    assert profile.email == "ada@example.com"
    assert profile.phone == "+14155550100"
    assert profile.identifier("square_customer_id") == "SQ9"
    assert profile.first_name == "Ada"


def test_merged_away_profile_id_leads_to_the_winner(omni: Omni) -> None:
    anon = omni.track({"anonymous_id": "a-1"}, "Product Viewed", channel="web").customer_id
    omni.identify("c-1", anonymous_id="a-1")

    assert omni.customer(anon).id == "c-1"
    with omni.store.transaction() as tx:
        merges = tx.query("SELECT winner_id, loser_id, reason FROM merges")
    assert merges == [("c-1", anon, "shared identifier")]


def test_two_app_customers_sharing_an_email_are_not_merged(omni: Omni) -> None:
    omni.identify("c-1", email="shared@example.com")
    omni.identify("c-2", email="shared@example.com")

    assert omni.customer("c-1").email == "shared@example.com"
    assert omni.customer("c-2").email is None  # the user_id limit (1) refused the merge
    assert omni.customer("c-2").id == "c-2"


def test_junk_identifier_values_never_match(omni: Omni) -> None:
    omni.identify("c-1", email="one@example.com", loyalty_id="null")
    omni.identify("c-2", email="two@example.com", loyalty_id="null")

    assert omni.customer("c-1").identifier("loyalty_id") is None
    assert omni.customer("c-2").id == "c-2"


def test_traits_merge_winner_first(omni: Omni) -> None:
    omni.identify(None, anonymous_id="a-9", traits={"first_name": "Anon", "city": "Paris"})
    omni.identify("c-9", traits={"first_name": "Grace"})
    omni.identify("c-9", anonymous_id="a-9")

    assert omni.customer("c-9").traits == {"first_name": "Grace", "city": "Paris"}


def test_batch_ingestion_resolves_identifiers_like_single_track(omni: Omni) -> None:
    omni.identify("c-5", phone="+14155550123")
    new = omni.track_many([
        {"who": {"phone": "+1 (415) 555-0123"}, "event": "Order Completed", "channel": "pos"},
        ("c-5", "Product Viewed", {"product_id": "p"}),
        {"who": {"email": "new@example.com"}, "event": "Signed Up", "channel": "web"},
    ])

    assert new == 3
    assert [t.name for t in omni.timeline("c-5")] == ["Order Completed", "Product Viewed"]


def test_national_numbers_need_a_default_region(store_url: str) -> None:
    with Omni(store_url, config={"identity": {"default_region": "US"}}) as omni:
        omni.identify("c-7", phone="(415) 555-0177")
        assert omni.customer("c-7").phone == "+14155550177"


def test_track_many_counts_only_new_touchpoints_in_large_batches(omni: Omni) -> None:
    items = [{"who": f"c-{i % 50}", "event": "Product Viewed", "id": f"evt-{i}"} for i in range(1500)]
    assert omni.track_many(items) == 1500
    assert omni.track_many([*items[:1200], {"who": "c-1", "event": "Cart Viewed", "id": "evt-new"}]) == 1
