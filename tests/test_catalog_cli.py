"""`omnisdk catalog import` and `omnisdk catalog show`, run in-process as a user would."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import structlog

from omnisdk import Omni
from omnisdk.cli import main


@pytest.fixture(autouse=True)
def _restore_logging() -> object:
    yield None
    structlog.reset_defaults()


@pytest.fixture
def store(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/omni.db"


def run(store: str, *args: str) -> int:
    return main(["--store", store, "catalog", *args])


CSV = """sku,product_id,title,price,currency,category,inventory.online,inventory.store-9,attributes.colour
mug-blue,mug,Blue mug,12.50,EUR,kitchen,4,0,blue
mug-red,mug,Red mug,12.50,EUR,kitchen,,2,red
tee,,Tee,not a price,,,,,
"cap, wool",,Cap,9,,,1,,
bad-stock,,Socks,3,,,-2,,
short,row
"""


def test_csv_import_reports_counts_and_refused_lines(store: str, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "catalog.csv"
    path.write_text(CSV, encoding="utf-8")

    assert run(store, "import", str(path)) == 1

    out, err = capsys.readouterr()
    assert out.strip() == "inserted 3, updated 0, unchanged 0, stock levels changed 4, refused 3"
    assert err.splitlines() == ["line 7: expected 9 cells, found 2",
                                "line 4: price: expected a price (a decimal number)",
                                "line 6: inventory.online: expected 0 to 1000000000000 units"]
    with Omni(store) as omni:
        assert omni.catalog.inventory("mug-red") == {"store-9": 2}
        assert omni.catalog.variant("cap, wool") is not None
        mug = omni.catalog.variant("mug-blue")
        assert mug is not None and mug.attributes == {"colour": "blue"}
    path.write_text(CSV.splitlines()[0] + "\n" + CSV.splitlines()[1].replace("12.50", "10") + "\n", encoding="utf-8")
    assert run(store, "import", str(path)) == 0
    assert capsys.readouterr().out.strip() == "inserted 0, updated 1, unchanged 0, stock levels changed 0, refused 0"


def test_json_and_jsonl_imports_stream_rows(store: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [{"sku": f"sku-{i}", "title": f"Item {i}", "price": i + 0.5, "inventory": {"online": i}}
            for i in range(2100)]
    array = tmp_path / "catalog.json"
    array.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    lines = tmp_path / "catalog.jsonl"
    lines.write_text("\n".join([json.dumps(rows[0] | {"price": "1.00"}), "{broken", json.dumps({"sku": "x"}), ""]),
                     encoding="utf-8")

    assert run(store, "import", str(array)) == 0
    assert capsys.readouterr().out.strip() == "inserted 2100, updated 0, unchanged 0, stock levels changed 2100, " \
                                              "refused 0"
    assert run(store, "import", str(lines)) == 1
    out, err = capsys.readouterr()
    assert out.strip() == "inserted 0, updated 1, unchanged 0, stock levels changed 0, refused 2"
    assert err.splitlines()[0].startswith("line 2: not JSON")
    assert err.splitlines()[1] == "line 3: title: is required"


def test_a_json_file_that_is_not_an_array_is_refused(store: str, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "catalog.json"
    path.write_text('{"sku": "a"}', encoding="utf-8")
    assert run(store, "import", str(path)) == 1
    assert "expected a JSON array" in capsys.readouterr().err
    assert run(store, "import", str(tmp_path / "missing.csv")) == 1
    assert run(store, "import", str(tmp_path / "catalog.xml")) == 1


def test_show_prints_a_variant_and_its_stock(store: str, capsys: pytest.CaptureFixture[str]) -> None:
    with Omni(store) as omni:
        omni.catalog.upsert_many([{"sku": "mug-blue", "title": "Blue mug", "price": "12.50",
                                   "attributes": {"colour": "blue"}, "inventory": {"online": 4}}])

    assert run(store, "show", "mug-blue") == 0
    assert capsys.readouterr().out.splitlines() == [
        "sku\tmug-blue", "product_id\tmug-blue", "title\tBlue mug", "price\t12.50", "currency\tUSD",
        'attributes.colour\t"blue"', "inventory.online\t4"]
    assert run(store, "show", "nope") == 1
