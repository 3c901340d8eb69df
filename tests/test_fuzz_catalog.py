"""Fuzzing the catalog's entry points: whatever rows a caller or an import file holds, a stored result or
a typed error naming the row, never an untyped exception. A fixed budget, for CI."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from omnisdk import Omni, OmniError
from omnisdk.cli._catalog import read_rows
from omnisdk.commerce import CatalogValidationError

BUDGET = settings(max_examples=120, deadline=None, derandomize=True)

text = st.text(st.characters(codec=None, exclude_categories=()), max_size=30) | st.sampled_from(
    ["", " ", "\x00", "\ud800", "x" * 3000, "12.50", "-1", "NaN", "1e400", "EUR"])
scalars = st.none() | st.booleans() | st.integers() | st.floats() | text | st.decimals() | st.builds(object)
json_like = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
                         max_leaves=12)
good_row = st.fixed_dictionaries({"sku": st.text("abcdef-", min_size=1, max_size=8), "title": st.just("Thing"),
                                  "price": st.decimals(0, 1000, places=2)},
                                 optional={"inventory": st.integers(0, 50) | st.dictionaries(
                                     st.sampled_from(["online", "store-1"]), st.integers(0, 9))})
fields = st.sampled_from(["sku", "product_id", "title", "price", "currency", "url", "image_url", "category", "brand",
                          "attributes", "inventory", "colour"])
bad_row = st.dictionaries(fields, json_like, max_size=6) | json_like


@pytest.fixture(scope="module")
def omni(module_omni: Omni) -> Omni:
    return module_omni


@BUDGET
@given(rows=st.lists(st.one_of(good_row.map(lambda r: ("good", r)), bad_row.map(lambda r: ("bad", r))), max_size=8))
def test_upsert_many_stores_the_good_rows_and_names_the_bad(omni: Omni, rows: list[tuple[str, Any]]) -> None:
    try:
        result = omni.catalog.upsert_many([row for _, row in rows])
    except CatalogValidationError as exc:
        result = exc.result
        assert all(0 <= e.index < len(rows) and e.field.startswith(f"items[{e.index}]") for e in exc.errors)
        assert all(rows[e.index][0] == "bad" for e in exc.errors)
    assert result.refused == len(result.errors) <= len(rows)
    for kind, row in rows:
        if kind == "good":
            assert omni.catalog.variant(row["sku"]) is not None


@BUDGET
@given(content=st.text(max_size=300) | st.sampled_from(['[{"sku": "a"}, 1e5', '[', '[]', '[{}, [], "x"]',
                                                        ' \n [ {"a": [1, 2]} ,\n {"b": 2} ] ']))
@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".csv"])
def test_import_files_parse_to_rows_or_a_typed_error(suffix: str, content: str) -> None:
    try:
        for line, row in read_rows(Path(f"catalog{suffix}"), io.StringIO(content)):
            assert line >= 1
            assert row is not None or suffix != ".csv"
    except OmniError:
        pass
