"""A throwaway PostgreSQL schema for one benchmark run, dropped afterwards whatever happens."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager


@contextmanager
def postgres_schema(base_url: str, prefix: str = "omni_bench") -> Iterator[str]:
    """Yield a store URL (`base_url?schema=…`) on a fresh schema; drop the schema on exit."""
    import psycopg

    schema = f"{prefix}_{uuid.uuid4().hex[:8]}"
    try:
        yield f"{base_url}{'&' if '?' in base_url else '?'}schema={schema}"
    finally:
        with psycopg.connect(base_url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
