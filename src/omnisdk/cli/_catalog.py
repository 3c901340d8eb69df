"""`omnisdk catalog import FILE` (CSV, JSON array or JSON lines, streamed) and `omnisdk catalog show SKU`.

A CSV has a header: sku, product_id, title, price, currency, url, image_url, category, brand, then
`inventory` (online units) or `inventory.<location>` columns and `attributes.<name>` columns; empty
cells are absent. JSON rows are objects with the same fields (`inventory` a number or an object).
Rows are read and stored a batch at a time; a refused row is reported with its line number.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final, TextIO

from .._errors import ValidationError
from .._omni import Omni
from ..commerce import CatalogUpsert
from ._command import Subparsers

__all__ = ["add_parser", "read_rows"]

_BATCH: Final = 1000
_COLUMNS: Final = frozenset({"sku", "product_id", "title", "price", "currency", "url", "image_url", "category",
                             "brand", "inventory"})
_READ: Final = 64 * 1024


def add_parser(sub: Subparsers) -> None:
    parser = sub.add_parser("catalog", help="the product catalog: import a file, show a SKU")
    commands = parser.add_subparsers(dest="catalog_command", metavar="ACTION", required=True)
    importing = commands.add_parser("import", help="upsert variants (and stock) from a .csv, .json or .jsonl file")
    importing.add_argument("file", type=Path)
    importing.add_argument("--source", default="import", help="recorded with each price and stock change")
    importing.set_defaults(func=import_file)
    show = commands.add_parser("show", help="a variant and its stock per location")
    show.add_argument("sku")
    show.set_defaults(func=show_sku)


class _RowError(Exception):
    def __init__(self, line: int, message: str) -> None:
        super().__init__(message)
        self.line = line


def _csv_rows(stream: TextIO) -> Iterator[tuple[int, dict[str, Any] | _RowError]]:
    reader = csv.reader(stream)
    header = next(reader, None)
    if header is None:
        return
    unknown = [c for c in header if c not in _COLUMNS and not c.startswith(("inventory.", "attributes."))]
    if unknown:
        raise ValidationError(f"unknown column(s) {', '.join(unknown)}; extra data goes in attributes.<name> "
                              "columns", field="line 1")
    for cells in reader:
        line = reader.line_num
        if len(cells) != len(header):
            yield line, _RowError(line, f"expected {len(header)} cells, found {len(cells)}")
            continue
        row: dict[str, Any] = {}
        for column, cell in zip(header, cells, strict=True):
            if cell == "":
                continue
            if column.startswith("inventory."):
                row.setdefault("inventory", {})[column.removeprefix("inventory.")] = cell
            elif column.startswith("attributes."):
                row.setdefault("attributes", {})[column.removeprefix("attributes.")] = cell
            else:
                row[column] = cell
        yield line, row


def _jsonl_rows(stream: TextIO) -> Iterator[tuple[int, Any]]:
    for line, text in enumerate(stream, 1):
        if not text.strip():
            continue
        try:
            yield line, json.loads(text)
        except ValueError as exc:
            yield line, _RowError(line, f"not JSON: {exc}")


def _json_rows(stream: TextIO) -> Iterator[tuple[int, Any]]:
    """The objects of a JSON array, one at a time, without reading the whole file."""
    decoder = json.JSONDecoder()
    buffer, line, opened, eof = "", 1, False, False
    while True:
        stripped = buffer.lstrip(" \t\r\n," if opened else " \t\r\n")
        line += buffer[:len(buffer) - len(stripped)].count("\n")
        buffer = stripped
        if not buffer or (opened and buffer[0] != "]" and not eof and len(buffer) < _READ):
            if eof:
                if not opened:
                    return
                raise ValidationError("the JSON array is not closed", field=f"line {line}")
            chunk = stream.read(_READ)
            eof, buffer = not chunk, buffer + chunk
            continue
        if not opened:
            if buffer[0] != "[":
                raise ValidationError("expected a JSON array of objects", field=f"line {line}")
            buffer, opened = buffer[1:], True
            continue
        if buffer[0] == "]":
            return
        try:
            value, end = decoder.raw_decode(buffer)
        except ValueError as exc:
            if eof:
                raise ValidationError(f"not JSON: {exc}", field=f"line {line}") from None
            chunk = stream.read(_READ)
            eof, buffer = not chunk, buffer + chunk
            continue
        yield line, value
        line += buffer[:end].count("\n")
        buffer = buffer[end:]


def read_rows(path: Path, stream: TextIO) -> Iterator[tuple[int, Any]]:
    """(line number, row or `_RowError`) of a catalog file, by its extension."""
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return _csv_rows(stream)
    if suffix == ".jsonl":
        return _jsonl_rows(stream)
    if suffix == ".json":
        return _json_rows(stream)
    raise ValidationError("expected a .csv, .json or .jsonl file", field="file", value=str(path))


def _store(omni: Omni, batch: list[tuple[int, Any]], source: str) -> tuple[CatalogUpsert, list[str]]:
    result = omni.catalog.upsert_many([row for _, row in batch], on_error="collect", source=source)
    problems = [f"line {batch[e.index][0]}: {e.field.removeprefix(f'items[{e.index}]').lstrip('.') or 'row'}: "
                f"{e.reason}" for e in result.errors]
    return result, problems


def _report(problems: list[str]) -> None:
    for problem in problems:
        print(problem, file=sys.stderr)


def import_file(args: argparse.Namespace) -> int:
    path: Path = args.file
    if not path.is_file():
        raise ValidationError("no such file", field="file", value=str(path))
    total = CatalogUpsert()
    refused = 0
    with Omni(args.store, config=args.config) as omni, path.open(encoding="utf-8-sig", newline="") as stream:
        batch: list[tuple[int, Any]] = []
        for line, row in read_rows(path, stream):
            if isinstance(row, _RowError):
                refused += 1
                print(f"line {row.line}: {row}", file=sys.stderr)
                continue
            batch.append((line, row))
            if len(batch) >= _BATCH:
                result, problems = _store(omni, batch, args.source)
                total, refused, batch = total + result, refused + result.refused, []
                _report(problems)
        if batch:
            result, problems = _store(omni, batch, args.source)
            total, refused = total + result, refused + result.refused
            _report(problems)
    print(f"inserted {total.inserted}, updated {total.updated}, unchanged {total.unchanged}, "
          f"stock levels changed {total.inventory}, refused {refused}")
    return 1 if refused else 0


def show_sku(args: argparse.Namespace) -> int:
    with Omni(args.store, config=args.config) as omni:
        variant = omni.catalog.variant(args.sku)
        if variant is None:
            print(f"omnisdk: no variant with SKU {args.sku!r}", file=sys.stderr)
            return 1
        stock = omni.catalog.inventory(variant.sku)
    for name in ("sku", "product_id", "title", "price", "currency", "url", "image_url", "category", "brand"):
        value = getattr(variant, name)
        if value is not None:
            print(f"{name}\t{value}")
    for key, value in sorted(variant.attributes.items()):
        print(f"attributes.{key}\t{json.dumps(value)}")
    for location, quantity in stock.items():
        print(f"inventory.{location}\t{quantity}")
    return 0
