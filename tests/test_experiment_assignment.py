"""Assignment is a pure function of names and ids: the same answer on every worker, version and machine."""

from __future__ import annotations

import hashlib
import math
import subprocess
import sys
from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnisdk import ValidationError
from omnisdk.experiments import GlobalControl, Split, assign


def point(person: bytes, *parts: str) -> float:
    """The documented derivation, written out independently: BLAKE2b-64, length-prefixed UTF-8 parts, 53 bits."""
    data = b"".join(len(p.encode()).to_bytes(8, "big") + p.encode() for p in parts)
    return (int.from_bytes(hashlib.blake2b(data, digest_size=8, person=person).digest(), "big") >> 11) / 2**53


# Pinned once; a change here reassigns every running experiment and rotates the global control group.
KNOWN_POINTS = [
    (("subject-test", "c-42"), "0x1.c25bcbca47c03p-1"),
    (("subject-test", "c-43"), "0x1.58ceee4054206p-1"),
    (("welcome-delay", "c-42"), "0x1.83d8201635eeep-2"),
    (("subject-test", "ü-ñ-🛒"), "0x1.b971b6d932fb4p-1"),
]


@pytest.mark.parametrize(("parts", "expected"), KNOWN_POINTS)
def test_the_point_of_a_customer_is_pinned(parts: tuple[str, str], expected: str) -> None:
    assert point(b"omnisdk.variant", *parts) == float.fromhex(expected)


@pytest.mark.parametrize(("parts", "expected"), KNOWN_POINTS)
def test_variants_take_consecutive_slices_in_name_order(parts: tuple[str, str], expected: str) -> None:
    x = float.fromhex(expected)
    split = Split({"c": 0.5, "a": 0.2, "b": 0.3})  # slices: a [0, .2), b [.2, .5), c [.5, 1)
    assert split.variant(*parts) == ("a" if x < 0.2 else "b" if x < 0.5 else "c")


def test_the_order_shares_are_written_in_does_not_matter() -> None:
    ids = [f"c-{i}" for i in range(2000)]
    one = [assign("subject-test", i, {"a": 0.3, "b": 0.7}) for i in ids]
    assert one == [assign("subject-test", i, {"b": 0.7, "a": 0.3}) for i in ids]


def test_the_same_variant_in_another_process_with_another_hash_seed() -> None:
    ids = [f"c-{i}" for i in range(200)]
    here = [assign("subject-test", i, {"a": 0.5, "b": 0.25, "holdout": 0.25}) for i in ids]
    code = (
        "from omnisdk.experiments import assign\n"
        f"print(','.join(assign('subject-test', f'c-{{i}}', {{'a': 0.5, 'b': 0.25, 'holdout': 0.25}}) "
        f"for i in range({len(ids)})))"
    )
    for seed in ("0", "12345"):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                             env={"PYTHONHASHSEED": seed, "PATH": ""})
        assert out.stdout.strip().split(",") == here


@pytest.mark.parametrize("shares", [{"a": 0.5, "b": 0.5}, {"a": 0.1, "b": 0.2, "c": 0.3, "holdout": 0.4},
                                    {"control": 0.05, "treatment": 0.95}])
def test_100k_customers_split_within_one_percent_of_the_shares(shares: dict[str, float]) -> None:
    split = Split(shares)
    counts = Counter(split.variant("subject-test", f"customer-{i}") for i in range(100_000))
    assert set(counts) == set(shares)
    for name, share in shares.items():
        assert abs(counts[name] / 100_000 - share) < 0.01, (name, counts[name])


def test_experiments_split_independently_of_each_other() -> None:
    # Being "a" in one experiment says nothing about the next: the 2x2 table is near a quarter per cell.
    cells = Counter((assign("subject-test", f"c-{i}", {"a": 0.5, "b": 0.5}),
                     assign("send-time", f"c-{i}", {"a": 0.5, "b": 0.5})) for i in range(40_000))
    assert all(abs(count / 40_000 - 0.25) < 0.01 for count in cells.values()) and len(cells) == 4


def test_a_zero_share_variant_gets_nobody_and_holdouts_are_known() -> None:
    split = Split({"a": 0.9, "paused": 0.0, "holdout": 0.1}, holdouts={"holdout"})
    seen = {split.variant("x", f"c-{i}") for i in range(5000)}
    assert seen == {"a", "holdout"}
    assert split.is_holdout("holdout") and not split.is_holdout("a")


@pytest.mark.parametrize(("shares", "field"), [
    ({}, "shares"),
    ({"a": 0.5, "b": 0.4}, "shares"),
    ({"a": 1.5, "b": -0.5}, "shares.b"),
    ({"a": math.nan, "b": 1.0}, "shares.a"),
    ({"a": True}, "shares.a"),
    ({"": 1.0}, "shares"),
])
def test_bad_shares_are_refused_with_the_field_at_fault(shares: dict[str, float], field: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Split(shares)
    assert caught.value.field == field


def test_shares_written_as_decimals_need_not_add_up_exactly() -> None:
    assert Split({"a": 0.1, "b": 0.2, "c": 0.7}).shares == {"a": 0.1, "b": 0.2, "c": 0.7}


def test_unknown_holdouts_empty_ids_and_names_are_refused() -> None:
    with pytest.raises(ValidationError, match="holdouts: not among the variants: 'none'"):
        Split({"a": 1.0}, holdouts={"none"})
    with pytest.raises(ValidationError) as caught:
        assign("subject-test", "", {"a": 1.0})
    assert caught.value.field == "customer_id"
    with pytest.raises(ValidationError) as caught:
        assign("", "c-1", {"a": 1.0})
    assert caught.value.field == "experiment"


def test_the_global_control_group_has_its_share_and_is_stable() -> None:
    group = GlobalControl(0.05)
    members = [i for i in range(100_000) if group.includes(f"customer-{i}")]
    assert abs(len(members) / 100_000 - 0.05) < 0.01
    assert members == [i for i in range(100_000) if GlobalControl(0.05).includes(f"customer-{i}")]
    assert group.includes("c-42") is (point(b"omnisdk.control", "", "c-42") < 0.05)


def test_a_new_salt_rotates_the_global_control_group() -> None:
    ids = [f"customer-{i}" for i in range(100_000)]
    old = {i for i in ids if GlobalControl(0.05, salt="2026").includes(i)}
    new = {i for i in ids if GlobalControl(0.05, salt="2027").includes(i)}
    assert abs(len(new) / len(ids) - 0.05) < 0.01
    # independent draws: the overlap is about 5% of 5%, not the whole group
    assert len(old & new) / len(ids) < 0.005


def test_the_global_control_group_is_unrelated_to_experiment_slices() -> None:
    # an experiment's bottom 5% is not the control group: they overlap by chance only (5% of 5%)
    ids = [f"customer-{i}" for i in range(20_000)]
    control = {i for i in ids if GlobalControl(0.05).includes(i)}
    first_slice = {i for i in ids if assign("subject-test", i, {"a": 0.05, "b": 0.95}) == "a"}
    assert len(control & first_slice) < 0.2 * len(control)


@pytest.mark.parametrize("share", [-0.1, 1.0, 2, math.nan, "0.05", True])
def test_a_bad_control_share_is_refused(share: object) -> None:
    with pytest.raises(ValidationError) as caught:
        GlobalControl(share)  # type: ignore[arg-type]
    assert caught.value.field == "global_control"


def test_holdouts_given_as_one_string_are_refused_not_read_as_letters() -> None:
    with pytest.raises(ValidationError) as caught:
        Split({"a": 0.9, "holdout": 0.1}, holdouts="holdout")
    assert caught.value.field == "holdouts"


BUDGET = settings(max_examples=200, deadline=None, derandomize=True)
weights = st.dictionaries(st.text(min_size=1, max_size=8), st.integers(min_value=0, max_value=1000), min_size=1,
                          max_size=6).filter(lambda w: sum(w.values()) > 0)


@BUDGET
@given(weights=weights, experiment=st.text(min_size=1), customer=st.text(min_size=1))
def test_any_valid_split_gives_a_variant_with_a_share(weights: dict[str, int], experiment: str, customer: str) -> None:
    total = sum(weights.values())
    split = Split({name: weight / total for name, weight in weights.items()})
    variant = split.variant(experiment, customer)
    assert weights[variant] > 0
    assert variant == Split(dict(reversed(list(split.shares.items())))).variant(experiment, customer)
